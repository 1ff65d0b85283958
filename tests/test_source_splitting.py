"""Idle workers split running event-stream walks; the parts partition the window exactly.

The Window unit tests exercise the clipping and splitting arithmetic in-process; the others run
real backfills over loopback HTTP into DuckDB and compare with /_sim/truth.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from pathlib import Path

import pytest
from conftest import control
from warehouse import Warehouse, assert_equals_truth

from growthos_source.http.fanout import Later
from growthos_source.splitting import Splitter, Window

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)


def _ev(i: int, at: dt.datetime) -> dict[str, str]:
    return {"id": f"evt_{i}", "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{at.microsecond // 1000:03d}Z"}


def test_a_split_hands_out_the_lower_half_and_the_walk_stops_at_the_middle() -> None:
    w = Window(T0, T0 + dt.timedelta(hours=10), T0 + dt.timedelta(hours=10))
    page = [_ev(i, T0 + dt.timedelta(hours=9, minutes=59 - i)) for i in range(10)]
    rows, done = w.clip(page)
    assert rows == page and not done
    assert w.position == T0 + dt.timedelta(hours=9, minutes=50)
    lo, mid = w.split_lower_half() or (None, None)
    assert lo == T0 and mid == T0 + dt.timedelta(hours=4, minutes=55)
    # The running walk keeps events at or after the middle and stops below it.
    page = [_ev(100, mid + dt.timedelta(milliseconds=1)), _ev(101, mid),
            _ev(102, mid - dt.timedelta(milliseconds=1))]
    rows, done = w.clip(page)
    assert [r["id"] for r in rows] == ["evt_100", "evt_101"] and done
    assert w.split_lower_half() is None  # finished walks are not split


def test_the_middle_is_whole_seconds_and_tiny_ranges_are_not_split() -> None:
    """Whole seconds: an API sending whole-second timestamps shows an event of 14:22:05.700 as
    14:22:05, and only a split at a second's start keeps every such event on one side."""
    w = Window(T0, None, T0 + dt.timedelta(seconds=3, milliseconds=500))
    _, mid = w.split_lower_half() or (None, None)
    assert mid is not None and mid.microsecond == 0 and T0 < mid
    w = Window(T0, T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(seconds=1))
    assert w.split_lower_half() is None


def test_an_idle_worker_sleeps_until_a_walk_reads_its_first_page() -> None:
    """While a walk has not read a page (its size is unknown) Splitter.more says `Later`:
    its wait does not poll the walks, and ends as soon as one reads a page worth splitting."""
    splitter = Splitter(lambda lo, hi, w: lambda: iter(()), min_rows=5)
    top = T0 + dt.timedelta(hours=10)
    splitter.job(T0, top, top)
    window = splitter._running[0]
    looks = 0
    remaining = window.remaining

    def counted() -> float:
        nonlocal looks
        looks += 1
        return remaining()

    window.remaining = counted  # type: ignore[method-assign]
    got: list[object] = []

    def ask() -> None:  # as a worker of fanout.py does, without its place while it waits
        nxt = splitter.more()
        while isinstance(nxt, Later):
            nxt.wait()
            nxt = splitter.more()
        got.append(nxt)

    waiter = threading.Thread(target=ask, daemon=True)
    waiter.start()
    time.sleep(0.3)
    assert got == [] and looks <= 2  # asleep, not polling (it used to look every 20 ms)
    woke = time.monotonic()
    window.clip([_ev(i, top - dt.timedelta(minutes=i + 1)) for i in range(10)])
    waiter.join(5)
    assert time.monotonic() - woke < 0.3  # woken by the page, not by its recheck timeout
    assert got and got[0] is not None and splitter.splits == 1


def test_rows_without_a_readable_timestamp_are_kept_for_the_rejects_check() -> None:
    w = Window(T0, None, T0 + dt.timedelta(days=1))
    page = [_ev(1, T0 + dt.timedelta(hours=5)), {"id": "evt_x", "timestamp": "yesterday"},
            {"id": "evt_y"}]
    rows, done = w.clip(page)
    assert rows == page and not done
    assert w.position == T0 + dt.timedelta(hours=5)


def test_one_window_is_split_across_workers_and_the_copy_is_exact(
        make_sim, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """All history in one window: the idle workers split it at once and keep splitting the
    longest walk. Every event arrives once, and the splits cost few requests."""
    sim = make_sim(contacts=60, events=6000, latency_ms=5)
    wh = Warehouse(tmp_path, sim)
    caplog.set_level("INFO", logger="growthos_source")
    before = control(sim, "GET", "stats").json().get("requests", 0)
    wh.sync(resources=("events",), events_window_days=36500, workers=4)
    requests = control(sim, "GET", "stats").json().get("requests", 0) - before
    assert_equals_truth(wh, "events")
    line = next(r.getMessage() for r in caplog.records if "splits of running walks" in r.message)
    splits = int(line.split(", ")[1].split()[0])
    assert splits >= 3
    pages = math.ceil(6000 / 100)
    # Where history starts: ~2*log2(days) one-row requests; each split adds about one page.
    assert requests <= pages + 2 * splits + 30, (requests, splits)


def test_splits_with_expiring_cursors_and_a_chunked_backfill_stay_exact(
        make_sim, tmp_path: Path) -> None:
    """Cursor expiry restarts a walk below its oldest event while its floor may have been
    raised by a split; chunk boundaries cut across the same windows. Still exact."""
    from growthos_source import sync

    sim = make_sim(contacts=60, events=4000, latency_ms=2)
    control(sim, "PUT", "faults", json={"seed": 3, "cursor_expiry_rate": 0.1})
    wh = Warehouse(tmp_path, sim)
    sync(wh.pipeline, lambda **kw: wh.source(
        page_size=25, events_window_days=120, workers=4, max_attempts=12, backoff_base=0.005,
        backoff_max=0.05, **kw).with_resources("events"), backfill_windows=2)
    assert control(sim, "GET", "stats").json().get("fault_cursor_expiry", 0) > 0
    assert_equals_truth(wh, "events")
