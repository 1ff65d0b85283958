"""Split event-stream windows while they are walked, so no worker idles at the end of a backfill.

A window's walk is one cursor chain: at 50 ms a request it reads ~18 pages/s however fast the
API allows. Windows rarely hold the same number of events (activity grows, has seasons), so with
fixed windows the run ends with a few large windows walked one chain each while the other
workers wait. Here a worker that runs out of windows takes the lower half of the remaining
range of the walk expected to last longest: the running walk keeps [middle, where it is) and
stops at the middle; the new walk reads [its floor, middle) with the documented `from`/`to`
filters. The two parts partition the window exactly: `to` is exclusive and the running walk
keeps only rows at or after the middle, so no event is lost or read twice.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .http.fanout import Later
from .incremental import iso_z, parse_ts, ts_key

Row = dict[str, Any]
T = TypeVar("T")
RECHECK_SECONDS = 0.5
# A running walk is split only when it has at least this many pages left: each split costs
# about one request (the new chain's first page, the old one's last partial page), and the
# walks' tail lasts as long as the longest one left, pages x request time. Far from the API
# ten pages were 3 s of a few walks alone at the end; the floor keeps near ones as they were.
SPLIT_MAX_PAGES = 10
SPLIT_MIN_PAGES = 4
SPLIT_TAIL_SECONDS = 1.0
WalkFactory = Callable[[dt.datetime, dt.datetime | None, "Window"], Callable[[], Iterator[Any]]]


class Window:
    """The part [floor, hi) of the event stream one walk reads, newest first.

    `floor` can be raised while the walk runs (`split_lower_half`); `clip` applies it to each
    page and says when the walk has passed it.
    """

    def __init__(self, lo: dt.datetime, hi: dt.datetime | None, top: dt.datetime,
                 on_change: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._on_change = on_change  # called when the first rows arrive and when it finishes
        self.floor = lo
        self._floor_key = ts_key(iso_z(lo))
        self.hi = hi
        self.top = top  # hi, or just after the newest event for the open-ended last window
        self.position = top  # oldest timestamp read so far
        self.rows = 0
        self.finished = False

    def clip(self, rows: list[Row]) -> tuple[list[Row], bool]:
        """Rows of a page (newest first) at or after the floor; True once the walk is done.

        A row without a readable timestamp is kept (the rejects check reports it) and does not
        move the position."""
        with self._lock:
            before = (self.rows > 0, self.finished)
            oldest = next((k for k in map(_key, reversed(rows)) if k is not None), None)
            if oldest is not None and oldest < self._floor_key:
                keys = [_key(r) for r in rows]
                rows = [r for r, k in zip(rows, keys) if k is None or k >= self._floor_key]
                oldest = min((k for k in keys if k is not None and k >= self._floor_key),
                             default=None)
                self.finished = True
            if oldest is not None:
                self.position = min(self.position, parse_ts(oldest))
            self.rows += len(rows)
            changed = before != (self.rows > 0, self.finished)
            finished = self.finished
        if changed and self._on_change is not None:
            self._on_change()
        return rows, finished

    def finish(self) -> None:
        with self._lock:
            changed, self.finished = not self.finished, True
        if changed and self._on_change is not None:
            self._on_change()

    def remaining(self) -> float:
        """Rows expected below the walk's position, by the density read so far (0 before the
        first page: an unread window may be nearly empty, and splitting it would only cost
        requests)."""
        with self._lock:
            if self.finished or not self.rows:
                return 0.0
            left = (self.position - self.floor).total_seconds()
            read = (self.top - self.position).total_seconds()
            return left * self.rows / max(read, 0.001)

    def split_lower_half(self) -> tuple[dt.datetime, dt.datetime] | None:
        """Give up [floor, middle) of what is left, for another walk; None if too small."""
        with self._lock:
            if self.finished:
                return None
            span = self.position - self.floor
            middle = self.floor + span / 2
            # A whole second: an API that sends whole-second timestamps (the docs' examples)
            # may hold an event shown as 14:22:05 anywhere in that second, and only a split at
            # a second's start puts every such event on one side.
            middle = middle.replace(microsecond=0)
            if not self.floor < middle < self.position:
                return None
            lo, self.floor = self.floor, middle
            self._floor_key = ts_key(iso_z(middle))
            return lo, middle


def _key(row: Row) -> str | None:
    try:
        return ts_key(row["timestamp"])
    except (KeyError, TypeError, ValueError):
        return None


def split_min_pages(cycle: float | None) -> int:
    """Pages a running walk must have left to be split, for a request cycle of `cycle`
    seconds (None: not measured yet): its tail should last at most SPLIT_TAIL_SECONDS."""
    if not cycle or cycle <= 0:
        return SPLIT_MAX_PAGES
    return max(SPLIT_MIN_PAGES, min(SPLIT_MAX_PAGES, math.ceil(SPLIT_TAIL_SECONDS / cycle)))


def split_longest(candidates: list[tuple[T, Window]], min_rows: int,
                  ) -> tuple[T, dt.datetime, dt.datetime] | None:
    """Split off the lower half of the candidate walk with the most rows left:
    (its tag, the new part's floor, middle), or None if no walk has `min_rows` left."""
    for tag, window in sorted(candidates, key=lambda c: c[1].remaining(), reverse=True):
        if window.remaining() < min_rows:
            return None
        part = window.split_lower_half()
        if part is not None:
            return tag, part[0], part[1]
    return None


class Splitter:
    """Hands out windows to walk: the planned ones first, then halves of running walks.

    `min_rows`: a running walk is split only when it is expected to read at least this many
    more rows (a split costs a request or two; below a few pages it cannot pay off).
    """

    def __init__(self, make_walk: WalkFactory, min_rows: int) -> None:
        self._make_walk = make_walk
        self._min_rows = min_rows
        self._lock = threading.Lock()
        self._running: list[Window] = []
        self.splits = 0
        # Bumped when a walk reads its first rows or finishes: what an idle worker waits for.
        self._changed = threading.Condition()
        self._version = 0

    def _bump(self) -> None:
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def job(self, lo: dt.datetime, hi: dt.datetime | None, top: dt.datetime,
            ) -> Callable[[], Iterator[Any]]:
        window = Window(lo, hi, top, on_change=self._bump)
        with self._lock:
            self._running.append(window)
        walk = self._make_walk(lo, hi, window)

        def run() -> Iterator[Any]:
            try:
                yield from walk()
            finally:
                window.finish()
        return run

    def more(self) -> tuple[Any, Callable[[], Iterator[Any]]] | Later | None:
        """A new job for an idle worker: the lower half of the longest walk, or None when no
        walk is worth splitting (the worker then stops). While a walk has not read its first
        rows its size is unknown: then `Later`, whose wait lasts until a walk reads its first
        rows or finishes (the worker waits without its place: fanout.py)."""
        with self._changed:
            seen = self._version
        with self._lock:
            self._running = [w for w in self._running if not w.finished]
            running = list(self._running)
        split = split_longest([(w, w) for w in running], self._min_rows)
        if split is not None:
            self.splits += 1
            _, lo, hi = split
            return f"split-{self.splits}", self.job(lo, hi, hi)
        if not any(w.rows == 0 and not w.finished for w in running):
            return None
        return Later(lambda: self._wait_for_change(seen))

    def _wait_for_change(self, seen: int) -> None:
        # Sleep until a walk reads its first rows or finishes (with fewer walks allowed at
        # once than there are, unstarted walks can wait for seconds: polling them cost ~10% of
        # an unthrottled backfill's CPU). Estimates also drift as walks go on, so look again
        # now and then.
        with self._changed:
            if self._version == seen:
                self._changed.wait(RECHECK_SECONDS)
