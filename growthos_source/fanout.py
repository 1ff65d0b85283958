"""Run several page walks concurrently and hand their pages to the caller's thread.

dlt consumes a resource from one thread; the walks (one per parent record or per time window)
run on a small pool and pass pages through a bounded queue, so memory stays bounded however many
walks there are, and all cursor bookkeeping happens in the consuming thread.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Hashable, Iterable, Iterator, TypeVar

T = TypeVar("T")
DONE = object()  # a walk finished: (key, DONE) is yielded after its last item


def fan_out(jobs: Iterable[tuple[Hashable, Callable[[], Iterable[T]]]],
            workers: int) -> Iterator[tuple[Hashable, Any]]:
    """Yield (key, item) for every item of every job, and (key, DONE) when a job completes.

    A job's exception stops the others and is re-raised here. With one worker the jobs run in
    this thread, in order.
    """
    job_list = list(jobs)
    if workers <= 1 or len(job_list) <= 1:
        for key, job in job_list:
            for item in job():
                yield key, item
            yield key, DONE
        return
    q: queue.Queue[tuple[Hashable, Any, BaseException | None]] = queue.Queue(maxsize=workers * 4)
    stop = threading.Event()

    def put(entry: tuple[Hashable, Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(key: Hashable, job: Callable[[], Iterable[T]]) -> None:
        try:
            for item in job():
                if not put((key, item, None)):
                    return
            put((key, DONE, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put((key, None, exc))

    pending = len(job_list)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="growthos") as pool:
        for key, job in job_list:
            pool.submit(run, key, job)
        try:
            while pending:
                key, item, exc = q.get()
                if exc is not None:
                    raise exc
                if item is DONE:
                    pending -= 1
                yield key, item
        finally:
            stop.set()
            while True:  # unblock producers so the pool can shut down
                try:
                    q.get_nowait()
                except queue.Empty:
                    break
