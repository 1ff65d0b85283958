"""EventFeed's hand-over of pages between its walks and the run consuming them: a run that
starts with pages read ahead keeps its walks going while it decodes them, and back-pressure
still holds the walks when the run falls behind on live pages; how many windows a chunk takes
and when a running walk is split."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from typing import Any

from growthos_source import backfill_plan as bp
from growthos_source.prefetch import LIVE_PAGES, EventFeed, WalkFactory
from growthos_source.prefetch_chunks import Bounds, Chunk, pack, unpack
from growthos_source.splitting import Window, split_min_pages

UTC = dt.timezone.utc
A = dt.datetime(2026, 1, 1, tzinfo=UTC)
B = dt.datetime(2026, 1, 2, tzinfo=UTC)
ROWS = [{"id": f"evt_{i}", "timestamp": "2026-01-01T10:00:00.000Z"} for i in range(100)]


def _active(feed: EventFeed) -> Chunk:
    c = Chunk((A, B), B)
    c.active = c.started = True
    feed._chunks[(A, B)] = c
    return c


def _deliver_in_thread(feed: EventFeed, c: Chunk) -> threading.Thread:
    t = threading.Thread(target=feed._deliver, args=(c, list(ROWS)), daemon=True)
    t.start()
    return t


def test_live_pages_behind_a_drained_buffer_are_queued_packed_not_held() -> None:
    """The run drains thousands of pages read ahead first; the live pages its walks deliver
    meanwhile wait packed behind them instead of stopping every walk (at 300 ms that stall
    left the API idle for 7 s)."""
    feed = EventFeed(max_buffered_rows=100_000)
    c = _active(feed)
    with feed._cond:
        feed._out.extend((len(ROWS), pack(ROWS)) for _ in range(50))  # read ahead, moved in
        feed._queued = 50 * len(ROWS)
        feed._live = LIVE_PAGES
    t = _deliver_in_thread(feed, c)
    t.join(timeout=5)
    assert not t.is_alive()
    n, page = feed._out[-1]
    assert n == len(ROWS) and isinstance(page, bytes) and unpack(page) == ROWS
    assert feed._queued == 51 * len(ROWS) and feed._live == LIVE_PAGES


def test_walks_wait_when_the_run_falls_behind_on_live_pages_or_the_buffer_is_full() -> None:
    feed = EventFeed(max_buffered_rows=1_000)
    c = _active(feed)
    with feed._cond:
        feed._live = LIVE_PAGES  # the run has LIVE_PAGES pages of rows it has not taken
    t = _deliver_in_thread(feed, c)
    t.join(timeout=0.3)
    assert t.is_alive()  # held: nothing queued packed ahead of the live pages
    with feed._cond:
        feed._live -= 1  # the run takes one
        feed._cond.notify_all()
    t.join(timeout=5)
    assert not t.is_alive() and feed._out[-1] == (len(ROWS), ROWS)
    # Behind packed pages the bound is the buffer's: full, the walk waits too.
    with feed._cond:
        feed._out.extend((len(ROWS), pack(ROWS)) for _ in range(10))
        feed._queued = 10 * len(ROWS)
        feed._live = LIVE_PAGES
    t = _deliver_in_thread(feed, c)
    t.join(timeout=0.3)
    assert t.is_alive()
    feed.close()
    t.join(timeout=5)
    assert not t.is_alive()


def test_spare_walks_wait_for_the_runs_first_pages_before_reading_ahead() -> None:
    """More walks than the run has windows: the spare ones split the run's walks once their
    first pages tell how long they are, rather than read the next run's windows ahead (which
    made the run last longer and filled the buffer)."""
    C = B + dt.timedelta(days=1)
    feed = EventFeed()
    with feed._cond:
        feed._walk = lambda a, b, w: (lambda: iter(()))  # never called here
        feed._plan([(A, B)], [(B, C)], C)
        first = feed._next_job_locked()
        assert first is not None and first[0].bounds == (A, B)
        assert feed._next_job_locked() is None  # (A, B) has read no page yet: wait
        first[1].clip(list(ROWS))  # its first page: 100 rows, a day's span ahead
        first[1].rows = 0  # as if still unread ...
        assert feed._next_job_locked() is None
        first[1].finish()  # ... finished: nothing of this run to split, so read ahead
        job = feed._next_job_locked()
        assert job is not None and job[0].bounds == (B, C) and not job[0].active


class _Ahead:
    """The feed's `read_ahead` over a set of windows read to their end."""

    def __init__(self, done: set[tuple[dt.datetime, dt.datetime | None]]) -> None:
        self.done = done

    def read_ahead(self, upcoming: list[tuple[dt.datetime, dt.datetime | None]],
                   limit: int) -> int:
        n = 0
        for bounds in upcoming[:limit]:
            if bounds not in self.done:
                break
            n += 1
        return n


def test_a_chunk_that_would_take_nearly_every_window_leaves_the_last_ones_for_one_more() -> None:
    """Far from the API a chunk is a window per walk: with 47 windows left and 46 walks the
    whole backfill was one chunk (or one plus a single window), and the load of ~500,000 rows
    came after the last request. The last ~5% go to a chunk of their own, read while the big
    one loads; windows read to their end already, and short backfills, are taken whole."""
    wins = [(A + dt.timedelta(days=i), A + dt.timedelta(days=i + 1)) for i in range(47)]
    nothing = _Ahead(set())
    assert bp.chunk_windows(8, 46, wins, nothing) == 44  # type: ignore[arg-type]
    assert bp.chunk_windows(8, 48, wins, nothing) == 44  # type: ignore[arg-type]
    assert bp.chunk_windows(8, 8, wins, nothing) == 8  # type: ignore[arg-type]
    assert bp.chunk_windows(8, 46, wins[:19], nothing) == 19  # type: ignore[arg-type]
    assert bp.chunk_windows(8, 46, wins, _Ahead(set(wins))) == 47  # type: ignore[arg-type]
    assert bp.chunk_windows(8, 46, wins[44:], nothing) == 3  # type: ignore[arg-type]


def test_walks_far_from_the_api_are_split_closer_to_their_end() -> None:
    """The tail of a run lasts as long as its longest walk: ten pages are 3 s at 300 ms. A
    walk is split while it has more than about a second of pages left, never below four."""
    assert [split_min_pages(c) for c in (None, 0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 2.0)] == \
        [10, 10, 10, 10, 10, 5, 4, 4]


def _recording_walk(calls: list[Bounds]) -> WalkFactory:
    """A walk of one page per window, noting each window it is started on."""
    def walk(a: dt.datetime, b: dt.datetime | None,
             window: Window) -> Callable[[], Iterator[list[dict[str, Any]]]]:
        def pages() -> Iterator[list[dict[str, Any]]]:
            calls.append((a, b))
            yield [dict(r, id=f"{a:%d}-{r['id']}") for r in ROWS]
        return pages
    return walk


def test_the_last_chunk_reads_the_caught_up_runs_lookback_and_finish_keeps_it() -> None:
    """The last chunk plans the caught-up run's lookback (`tail`) as its upcoming window: idle
    workers read it during that chunk, `finish()` keeps it, and the caught-up run gets its
    pages without walking it again."""
    calls: list[Bounds] = []
    walk = _recording_walk(calls)
    feed = EventFeed()
    feed.tail = (B, None)
    try:
        first = list(feed.pages([(A, B)], [feed.tail], B, walk, 2))
        for _ in range(500):  # the tail is read ahead by a worker of the last chunk
            with feed._cond:
                if feed._buffered:
                    break
            threading.Event().wait(0.01)
        assert calls == [(A, B), (B, None)] and feed._buffered == len(ROWS)
        feed.finish()
        assert feed.done and list(feed._chunks) == [(B, None)]
        tail = list(feed.pages([(B, None)], [], B, walk, 2))
        assert [r["id"] for r in tail[0]] == [f"02-{r['id']}" for r in ROWS]
        assert len(first) == 1 and calls == [(A, B), (B, None)]  # not walked twice
    finally:
        feed.close()


def test_finish_forgets_windows_read_ahead_but_the_tail() -> None:
    feed = EventFeed()
    calls: list[Bounds] = []
    try:
        list(feed.pages([(A, B)], [(B, None)], B, _recording_walk(calls), 1))
        feed.finish()
        assert feed.done and feed._chunks == {} and feed._buffered == 0
    finally:
        feed.close()
