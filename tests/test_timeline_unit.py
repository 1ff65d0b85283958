"""Unit tests of timeline: where history starts (`_earliest`, one probe at a time or several),
where a caught-up walk starts and what an open-ended read covers."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from growthos_source import timeline
from growthos_source.timeline import DAY, _earliest

END = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc)
AGES = [dt.timedelta(hours=3), DAY, DAY * 1.5, DAY * 17.25, DAY * 730.6, DAY * 4096,
        DAY * 365 * 49]


class Records:
    """'Is there a record before t' for records starting at `first`; counts probes and the
    rounds in which they were asked concurrently."""

    def __init__(self, first: dt.datetime) -> None:
        self.first = first
        self.probes = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        self._barrier: threading.Event = threading.Event()

    def __call__(self, t: dt.datetime) -> bool:
        with self._lock:
            self.probes += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self._barrier.wait(0.005)  # long enough for the other probes of a round to start
        with self._lock:
            self.in_flight -= 1
        return t > self.first


@pytest.mark.parametrize("probes", [1, 4, 8])
@pytest.mark.parametrize("age", AGES, ids=[str(a) for a in AGES])
def test_finds_the_start_within_a_day(age: dt.timedelta, probes: int) -> None:
    records = Records(END - age)
    lo, found = _earliest(records, END, probes)
    assert found
    assert lo <= records.first <= lo + DAY
    assert records.most_in_flight <= probes


def test_several_probes_at_a_time_take_fewer_rounds() -> None:
    serial, parallel = Records(END - DAY * 730.6), Records(END - DAY * 730.6)
    _earliest(serial, END, 1)
    _earliest(parallel, END, 8)
    rounds = parallel.probes / 8
    assert serial.probes >= 18 and rounds <= 6 < serial.probes
    assert parallel.most_in_flight == 8


@pytest.mark.parametrize("probes", [1, 8])
def test_history_beyond_fifty_years_is_reported_not_searched_forever(probes: int) -> None:
    records = Records(END - DAY * 365 * 200)
    lo, found = _earliest(records, END, probes)
    assert not found and lo <= END - DAY * 365 * 50 and records.probes < 40


def test_one_run_joins_adjacent_windows_into_at_most_workers_walks() -> None:
    import datetime as dt
    import itertools

    from growthos_source.timeline import merge_windows

    day = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    wins: list[tuple[dt.datetime, dt.datetime | None]] = [
        (day + dt.timedelta(days=7 * i), day + dt.timedelta(days=7 * (i + 1))) for i in range(10)]
    wins.append((day + dt.timedelta(days=70), None))  # open-ended: catches new events
    walks = merge_windows(wins, 4)
    assert len(walks) == 4
    assert walks[0][0] == wins[0][0] and walks[-1][1] is None  # same span, still open-ended
    assert all(a[1] == b[0] for a, b in itertools.pairwise(walks))  # adjacent, no gap, no overlap
    assert [sum(1 for w in wins if a <= w[0] and (b is None or w[0] < b)) for a, b in walks] == [
        3, 3, 3, 2]
    assert merge_windows(wins, 16) == wins  # fewer windows than workers: unchanged


def test_lookback_start_is_a_quarter_hour_behind_the_mark() -> None:
    mark = dt.datetime(2026, 5, 31, 23, 56, 58, 284000, tzinfo=dt.timezone.utc)
    assert timeline.lookback_start(mark, dt.timedelta(minutes=10)) == mark.replace(
        minute=45, second=0, microsecond=0)
    assert timeline.lookback_start(mark, dt.timedelta(0)) == mark.replace(
        minute=45, second=0, microsecond=0)
    assert timeline.lookback_start(mark, dt.timedelta(hours=1)).hour == 22


def test_an_open_tail_covers_open_walks_from_its_start_on() -> None:
    t0 = dt.datetime(2026, 5, 31, 23, 45, tzinfo=dt.timezone.utc)
    later = t0 + dt.timedelta(days=8)
    assert timeline.covers_open_walk((t0, None), [(t0, None)])
    assert timeline.covers_open_walk((t0, None), [(later, later + DAY), (later + DAY, None)])
    assert not timeline.covers_open_walk((later, None), [(t0, None)])  # starts too late
    assert not timeline.covers_open_walk((t0, None), [(t0, later)])  # a bounded walk
    assert not timeline.covers_open_walk(None, [(t0, None)])
    assert not timeline.covers_open_walk((t0, None), [])
