"""Run several page walks concurrently and hand their pages to the caller's thread.

dlt consumes a resource from one thread; the walks (one per parent record or per time window)
run on a small pool and pass pages through a bounded queue, so memory stays bounded however many
walks there are, and all cursor bookkeeping happens in the consuming thread. With a `limit`
(the client's learnt concurrency, concurrency.py) only that many walks advance at a time: a
worker over it parks between two pages, keeping its walk, and resumes when a place frees up.
A worker looking for work holds no place, so a parked walk can always resume.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
DONE = object()  # a walk finished: (key, DONE) is yielded after its last item
_EXIT = object()  # a worker thread found no more work
Job = tuple[Hashable, Callable[[], Iterable[Any]]]


class _Places:
    """At most `cap()` workers advance a walk at once; the others park between pages."""

    def __init__(self, cap: Callable[[], int], stop: threading.Event) -> None:
        self._cap = cap
        self._stop = stop
        self._cond = threading.Condition()
        self._taken = 0
        self._parked = 0

    def enter(self) -> None:
        with self._cond:
            self._parked += 1
            try:
                # The cap may rise without anyone leaving: look again now and then.
                while self._taken >= max(1, self._cap()) and not self._stop.is_set():
                    self._cond.wait(0.25)
            finally:
                self._parked -= 1
            self._taken += 1

    def leave(self) -> None:
        with self._cond:
            self._taken -= 1
            self._cond.notify()

    def keep(self) -> bool:
        """After a page: True to go on with the walk, False to park (then call enter())."""
        with self._cond:
            cap = max(1, self._cap())
            if self._taken > cap:
                self._taken -= 1
                self._cond.notify()
                return False
            if self._parked and self._taken < cap:
                self._cond.notify(cap - self._taken)
            return True


def fan_out(jobs: Iterable[Job], workers: int,
            more: Callable[[], Job | None] | None = None,
            limit: Callable[[], int] | None = None) -> Iterator[tuple[Hashable, Any]]:
    """Yield (key, item) for every item of every job, and (key, DONE) when a job completes.

    `more`, called by a worker that finds no job left, may hand out new work (a split of a
    running job, see splitting.py); None lets the worker stop. `limit` caps the jobs advancing
    at once (see the module docstring). A job's exception stops the others and is re-raised
    here. With one worker the jobs run in this thread, in order.
    """
    job_list = list(jobs)
    if workers <= 1 or (len(job_list) <= 1 and more is None):
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

    todo = iter(job_list)
    take_lock = threading.Lock()

    def take() -> Job | None:
        with take_lock:
            nxt = next(todo, None)
        return nxt if nxt is not None or more is None else more()

    places = _Places(limit or (lambda: workers), stop)

    def run(key: Hashable, job: Callable[[], Iterable[Any]]) -> bool:
        places.enter()
        try:
            for item in job():
                if not put((key, item, None)):
                    return False
                if not places.keep():
                    places.enter()
            return put((key, DONE, None))
        finally:
            places.leave()

    def worker() -> None:
        try:
            while not stop.is_set() and (nxt := take()) is not None:
                if not run(*nxt):
                    return
            put((None, _EXIT, None))
        except BaseException as exc:  # noqa: BLE001  handed to the consumer, which re-raises it
            put((None, None, exc))

    threads = [threading.Thread(target=worker, name=f"growthos-{i}", daemon=True)
               for i in range(min(workers, len(job_list)) if more is None else workers)]
    for t in threads:
        t.start()
    alive = len(threads)
    try:
        while alive:
            key, item, exc = q.get()
            if exc is not None:
                raise exc
            if item is _EXIT:
                alive -= 1
                continue
            yield key, item
    finally:
        stop.set()
        while any(t.is_alive() for t in threads):  # unblock producers so they can exit
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
