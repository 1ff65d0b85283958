"""Keep reading the event stream while dlt loads the previous backfill chunk.

A chunked backfill (`sync(..., backfill_windows=N)`) is a series of dlt runs, each extract ->
normalize -> load; without help the API sits idle during every normalize and load. An
`EventFeed` lives across those runs: its workers walk the chunk's windows (splitting long walks
as in splitting.py), and once the chunk needs no more workers they walk the next chunk's windows
into a bounded buffer, which the next run drains first. Splits come before reading ahead: a
worker reading ahead blocks when the buffer is full, so with read-ahead first the chunk's last
long walk was left to one cursor chain (~18 requests/s at 50 ms) while the others waited. Nothing is committed early: the state
marks still move only with the load of the chunk that read the rows, so a run killed with pages
buffered simply reads those windows again.

All walks go through the first run's client, so they share one pacing schedule.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from .http import GrowthOSClient
from .prefetch_chunks import Bounds, Chunk, Packed, Row, pack, unpack
from .splitting import Window, split_longest

BUFFERED_ROWS = 200_000
LIVE_PAGES = 64
# (a, b, window) -> a callable starting the walk of [a, b) clipped to `window`
WalkFactory = Callable[[dt.datetime, dt.datetime | None, Window], Callable[[], Iterator[Any]]]


class EventFeed:
    """Walks planned event-stream windows for successive runs; see the module docstring.

    `max_buffered_rows` bounds what is read ahead for the next run (memory), `workers` is
    taken from the first run. Call `close()` when the backfill ends (sync() does).
    """

    def __init__(self, max_buffered_rows: int = BUFFERED_ROWS,
                 split_min_rows: int = 1_000) -> None:
        self._cond = threading.Condition()
        self._chunks: dict[Bounds, Chunk] = {}
        self._order: list[Bounds] = []
        # What the current run consumes, in order: (rows, page), the page as rows (delivered
        # live) or packed (read ahead). At most LIVE_PAGES live pages wait, so the consumer
        # sets the pace. A run that starts with thousands of pages read ahead takes seconds to
        # drain them; meanwhile its walks go on, their pages packed and queued behind, within
        # the buffer's bound (`_queued`: rows of packed pages queued).
        self._out: deque[tuple[int, list[Row] | Packed]] = deque()
        self._live = 0
        self._queued = 0
        self._running: list[tuple[Chunk, Window]] = []
        self._threads: list[threading.Thread] = []
        self._buffered = 0
        self._cap = max_buffered_rows
        self._split_min_rows = split_min_rows
        self._error: BaseException | None = None
        self._closed = False
        self._finished = False
        self._top = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
        # The lookback the caught-up run after the backfill walks, `[from, None)`: the last
        # chunk plans it as its one upcoming window, so idle workers read it while the chunk's
        # walks end and its load runs (see event_stream.read_events).
        self.tail: Bounds | None = None
        self._client: GrowthOSClient | None = None
        self._walk: WalkFactory | None = None
        self.splits = 0
        # What the first run learnt of the stream, (newest event, API ignores `to`), for the
        # later runs (event_stream._probe_stream).
        self.stream_probe: tuple[dt.datetime | None, bool] | None = None
        # The API's events per day, asked once per backfill to plan its windows
        # (backfill_plan.py); None: not asked yet, {}: the API gave none.
        self.day_counts: dict[str, int] | None = None

    def client(self, fallback: GrowthOSClient) -> GrowthOSClient:
        """The client every walk of the feed uses: the first run's."""
        with self._cond:
            if self._client is None:
                self._client = fallback
            return self._client

    def pages(self, wins: list[Bounds], upcoming: list[Bounds], top: dt.datetime,
              walk: WalkFactory, workers: int, split_min_rows: int | None = None,
              ) -> Iterator[list[Row]]:
        """Pages (newest first within a walk) of exactly the windows `wins`, read ahead or now;
        `upcoming` are the windows the next run will ask for (read ahead when workers idle);
        `split_min_rows`: rows a running walk must have left to be split, from now on."""
        with self._cond:
            self._raise_if_failed()
            self._walk = walk
            if split_min_rows is not None:
                self._split_min_rows = split_min_rows
            self._top = top
            self._plan(wins, upcoming, top)
            while len(self._threads) < workers:
                t = threading.Thread(target=self._worker, daemon=True,
                                     name=f"growthos-feed-{len(self._threads)}")
                self._threads.append(t)
                t.start()
            self._cond.notify_all()
        active = [self._chunks[b] for b in wins]
        while True:
            with self._cond:
                while not self._out and not all(c.finished for c in active):
                    self._raise_if_failed()
                    self._cond.wait(0.5)
                self._raise_if_failed()
                if not self._out:
                    break
                n, page = self._out.popleft()
                if isinstance(page, bytes):
                    self._queued -= n
                else:
                    self._live -= 1
                self._cond.notify_all()
            yield unpack(page) if isinstance(page, bytes) else page  # packed by _deliver
        with self._cond:
            for c in active:
                c.active = False
                self._chunks.pop(c.bounds, None)

    def read_ahead(self, upcoming: list[Bounds], limit: int) -> int:
        """How many of the first `limit` windows of `upcoming`, in order, have been read to
        their end ahead of the run that will ask for them."""
        with self._cond:
            n = 0
            for bounds in upcoming[:limit]:
                c = self._chunks.get(bounds)
                if c is None or c.cancelled or not c.finished:
                    break
                n += 1
            return n

    @property
    def done(self) -> bool:
        """The backfill ended (`finish` or `close`): the caught-up run after it reuses what
        the feed learnt (its client, `stream_probe`) and the tail it read (`tail`)."""
        return self._finished or self._closed

    def finish(self) -> None:
        """The backfill's last chunk is loaded: keep only the tail the last run planned
        (read on, for the caught-up run), forget any other window read ahead."""
        with self._cond:
            self._finished = True
            keep = {self.tail} if self.tail is not None else set()
            self._plan([], [b for b in self._order if b in keep], self._top)
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the workers (they finish their current request) and drop what was read ahead."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=60)

    # ---- internals; `_cond` is held by every *_locked method's caller -----------------------
    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _plan(self, wins: list[Bounds], upcoming: list[Bounds], top: dt.datetime) -> None:
        wanted = set(wins) | set(upcoming)
        for bounds, c in list(self._chunks.items()):
            if bounds not in wanted:  # planned differently this time: forget it
                c.cancelled = True
                self._buffered -= sum(n for n, _ in c.buffer)
                c.buffer.clear()
                del self._chunks[bounds]
        for bounds in [*wins, *upcoming]:
            if bounds not in self._chunks:
                self._chunks[bounds] = Chunk(bounds, bounds[1] or top)
        for bounds in wins:
            c = self._chunks[bounds]
            c.active = True
            moved = sum(n for n, _ in c.buffer)
            self._buffered -= moved
            self._queued += moved
            self._out.extend(c.buffer)
            c.buffer.clear()
        self._order = [*wins, *upcoming]

    def _next_job_locked(self) -> tuple[Chunk, Window] | None:
        assert self._walk is not None
        waiting = [self._chunks[b] for b in self._order
                   if b in self._chunks and not self._chunks[b].started]
        for c in waiting:  # windows of the current run first
            if c.active:
                return self._start_locked(c, *c.bounds, c.top)
        # Then halves of the current run's long walks (about a request per split): a worker
        # reading ahead blocks once the buffer is full, and the run would end on one chain.
        current = [(c, w) for c, w in self._running if c.active]
        job = self._split_locked(current)
        if job is not None:
            return job
        if any(w.rows == 0 and not w.finished for _, w in current):
            # A walk of this run that has not read its first page may be worth splitting
            # once it has (its size is unknown until then): wait for it rather than read
            # the next run's windows ahead with the walks this run needs.
            return None
        # Then read ahead for the next run, while the buffer has room: the next windows, then
        # halves of their long walks (the last chunk's few windows are read ahead while dlt
        # loads the one before, by as many walks as the rate needs).
        if self._buffered + self._queued < self._cap:
            if waiting:
                c = waiting[0]
                return self._start_locked(c, *c.bounds, c.top)
            return self._split_locked([(c, w) for c, w in self._running
                                       if not c.active and not c.cancelled])
        return None

    def _split_locked(self, candidates: list[tuple[Chunk, Window]],
                      ) -> tuple[Chunk, Window] | None:
        """The lower half of the candidate walk with the most left, as a new job."""
        split = split_longest(candidates, self._split_min_rows)
        if split is None:
            return None
        self.splits += 1
        c, lo, middle = split
        return self._start_locked(c, lo, middle, middle)

    def _start_locked(self, c: Chunk, a: dt.datetime, b: dt.datetime | None,
                      top: dt.datetime) -> tuple[Chunk, Window]:
        window = Window(a, b, top)
        c.started = True
        c.jobs += 1
        self._running.append((c, window))
        return c, window

    def _worker(self) -> None:
        while True:
            with self._cond:
                job = None
                while job is None:
                    if self._closed or self._error is not None:
                        return
                    job = self._next_job_locked()
                    if job is None:
                        self._cond.wait(0.5)
                walk = self._walk
            c, window = job
            assert walk is not None
            try:
                for rows in walk(window.floor, window.hi, window)():
                    if rows and not self._deliver(c, rows):
                        break
            except BaseException as exc:  # noqa: BLE001  raised in the consuming run
                with self._cond:
                    self._error = self._error or exc
            finally:
                window.finish()
                with self._cond:
                    c.jobs -= 1
                    self._running.remove((c, window))
                    self._cond.notify_all()

    def _deliver(self, c: Chunk, rows: list[Row]) -> bool:
        packed: Packed | None = None
        with self._cond:
            while not (self._closed or c.cancelled or self._error is not None):
                if c.active and self._live < LIVE_PAGES and packed is None:
                    self._out.append((len(rows), rows))
                    self._live += 1
                    self._cond.notify_all()
                    return True
                # Packed: read ahead for a later run, or behind the packed pages this run
                # still drains.
                queue = not c.active or self._queued > 0 or packed is not None
                if queue and self._buffered + self._queued < self._cap:
                    if packed is None:  # encode outside the lock, then look again
                        self._cond.release()
                        try:
                            # only the rows: the page's body would double what is held
                            packed = pack(rows)
                        finally:
                            self._cond.acquire()
                        continue
                    if c.active:
                        self._out.append((len(rows), packed))
                        self._queued += len(rows)
                        self._cond.notify_all()
                    else:
                        c.buffer.append((len(rows), packed))
                        self._buffered += len(rows)
                    return True
                self._cond.wait(0.5)
            return False
