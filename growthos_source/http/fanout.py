"""Run several page walks concurrently and hand their pages to the caller's thread.

dlt consumes a resource from one thread; the walks (one per parent record or per time window)
run on a small pool and pass pages through a bounded queue, so memory stays bounded however many
walks there are, and all cursor bookkeeping happens in the consuming thread. A walk advances
only while it holds one of the client's places (concurrency.py: one budget for all resources
and threads): a worker over the cap parks between two pages, keeping its walk, and resumes when
a place frees up. A worker takes new work (a job, or a split of a running one) only once it
holds a place, after every parked walk, so more workers than places open no more walks than the
limit has room for. A worker waiting for its consumer to take a page holds no place, so a parked
walk can always resume and a resource dlt does not pull from cannot hold up the others. Nor does
a worker told to come back `Later` for work (a split that waits for a walk's first rows): it
waits without a place, since the walk it waits for, or another table's, may need that place.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from .concurrency import UNKNOWN, Places

T = TypeVar("T")
DONE = object()  # a walk finished: (key, DONE) is yielded after its last item
_EXIT = object()  # a worker thread found no more work
IDLE = 0.0  # the priority of a worker looking for work: below any walk's (at least 1)
Job = tuple[Hashable, Callable[[], Iterable[Any]]]


class Later:
    """What `more` returns when it has no work now but may have soon: `wait()` blocks until it
    is worth asking again (briefly: the worker then looks at `stop` and asks again)."""

    __slots__ = ("wait",)

    def __init__(self, wait: Callable[[], None]) -> None:
        self.wait = wait


def fan_out(jobs: Iterable[Job], workers: int,
            more: Callable[[], Job | Later | None] | None = None,
            limit: Callable[[], int] | None = None,
            places: Places | None = None,
            sizes: Mapping[Hashable, float] | None = None) -> Iterator[tuple[Hashable, Any]]:
    """Yield (key, item) for every item of every job, and (key, DONE) when a job completes.

    `workers` threads run the jobs. `more`, called by a worker that finds no job left, may hand
    out new work (a split of a running job, see splitting.py), `Later` to be asked again after
    its wait, or None to let the worker stop.
    `places` (the client's shared budget) or else `limit` caps the jobs advancing at once (see
    the module docstring). `sizes`: the items (pages) a job is expected to yield, where known;
    such jobs start longest first, and a job's place follows the pages it has left
    (concurrency.Places). A job's exception stops the others and is re-raised here. With one
    worker the jobs run in this thread, in order.
    """
    job_list = list(jobs)
    known = sizes or {}
    if known:  # longest first; jobs of unknown size first of all, in their order
        job_list.sort(key=lambda j: -known.get(j[0], UNKNOWN))
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

    def take() -> Job | Later | None:
        with take_lock:
            nxt = next(todo, None)
        return nxt if nxt is not None or more is None else more()

    budget = places or Places(limit or (lambda: workers))

    def hand_over(entry: tuple[Hashable, Any, BaseException | None], left: float) -> bool:
        """Queue an item; while the consumer lags, without holding a place."""
        try:
            q.put_nowait(entry)
            return True
        except queue.Full:
            pass
        budget.leave()
        try:
            return put(entry)
        finally:
            budget.enter(stop, left)

    def run(key: Hashable, job: Callable[[], Iterable[Any]]) -> bool:
        size = known.get(key)
        done = 0

        def left() -> float:  # pages still to read, as far as anyone knows
            return UNKNOWN if size is None else max(1.0, size - done)

        for item in job():
            done += 1
            if not hand_over((key, item, None), left()):
                return False
            if not budget.keep(left()):
                budget.enter(stop, left())
        return hand_over((key, DONE, None), left())

    def worker() -> None:
        try:
            while not stop.is_set():
                # New work only with a place, after every parked walk (IDLE ranks last): a
                # worker does not open or split a walk the limit has no room for.
                budget.enter(stop, IDLE)
                try:
                    nxt = take()
                    if nxt is None or (not isinstance(nxt, Later) and not run(*nxt)):
                        break
                finally:
                    budget.leave()
                if isinstance(nxt, Later):
                    nxt.wait()  # without a place
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


def read_ahead(job: Callable[[], Iterable[T]], places: Places | None = None) -> Iterator[T]:
    """The items of one job, produced on a worker thread while the caller handles the previous
    ones: a single walk then waits for neither the caller's work nor its own requests' gaps."""
    for _, item in fan_out([(0, job)], 2, more=lambda: None, places=places):
        if item is not DONE:
            yield item
