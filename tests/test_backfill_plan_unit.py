"""Unit tests of backfill_plan: windows cut from the API's daily counts, and the count queries."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import threading
from typing import Any

import pytest

from growthos_source import backfill_plan as bp
from growthos_source import reconcile
from growthos_source.errors import NotFoundError

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)


def day_counts(first: dt.date, days: int, seed: int, empty_share: float = 0.2) -> dict[str, int]:
    rnd = random.Random(seed)
    return {(first + DAY * i).isoformat(): (0 if rnd.random() < empty_share
                                            else rnd.randint(1, 900))
            for i in range(days)}


def midnight(d: str) -> dt.datetime:
    x = dt.date.fromisoformat(d)
    return dt.datetime(x.year, x.month, x.day, tzinfo=UTC)


def held(counts: dict[str, int], a: dt.datetime, b: dt.datetime | None) -> int:
    return sum(n for d, n in counts.items() if midnight(d) + DAY > a and (b is None or
                                                                        midnight(d) < b))


@pytest.mark.parametrize("seed", range(6))
def test_windows_cover_the_range_at_midnights_with_enough_events_each(seed: int) -> None:
    counts = day_counts(dt.date(2024, 3, 1), 700, seed)
    start = midnight("2024-02-29")
    newest = midnight("2026-01-29") + dt.timedelta(hours=5)
    wins = bp.windows(start, None, counts, 10_000, newest)
    assert wins[0][0] == start and wins[-1][1] is None
    for (a, b), (c, _) in itertools.pairwise(wins):
        assert b == c  # no gap, no overlap
        assert b is not None and b.time() == dt.time(0) and b.tzinfo is UTC
        assert held(counts, a, b) >= 10_000
    assert sum(held(counts, a, b) for a, b in wins) == sum(counts.values())
    # About as many windows as the events fill: each partial page is ~1% of its window.
    assert len(wins) <= sum(counts.values()) // 10_000 + 1


@pytest.mark.parametrize("seed", range(4))
def test_a_later_chunk_planning_from_a_window_end_gets_the_same_windows(seed: int) -> None:
    """The feed reads the next chunk's windows ahead; the next run plans again from where
    the chunk ended, and must name exactly those windows."""
    counts = day_counts(dt.date(2025, 1, 1), 400, seed)
    start, newest = midnight("2024-12-31"), midnight("2026-02-04")
    wins = bp.windows(start, None, counts, 5_000, newest)
    for k in range(1, len(wins)):
        assert bp.windows(wins[k][0], None, counts, 5_000, newest) == wins[k:]


def test_windows_stop_at_the_end_date_and_the_newest_event() -> None:
    counts = {f"2026-01-{d:02d}": 4_000 for d in range(1, 31)}
    start = midnight("2026-01-01")
    bounded = bp.windows(start, midnight("2026-01-10") + dt.timedelta(hours=7), counts, 8_000,
                         None)
    assert bounded[-1][1] == midnight("2026-01-10") + dt.timedelta(hours=7)
    assert [b for _, b in bounded[:-1]] == [midnight(f"2026-01-{d:02d}") for d in (3, 5, 7, 9)]
    newest = midnight("2026-01-06") + dt.timedelta(hours=1)
    capped = bp.windows(start, None, counts, 8_000, newest)
    assert all(b is None or b <= newest for _, b in capped)
    assert capped[-1] == (midnight("2026-01-05"), None)
    # One day above the target is a window of its own; empty counts: one open window.
    assert bp.windows(start, None, {"2026-01-02": 50_000}, 8_000, newest) == [
        (start, midnight("2026-01-03")), (midnight("2026-01-03"), None)]
    assert bp.windows(start, None, {}, 8_000, newest) == [(start, None)]


class Counts:
    """The API's `event_count` by day for events on `days`, recording each query."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.asked: list[tuple[dt.date, dt.date]] = []

    def __call__(self, first: dt.date, last: dt.date) -> dict[str, int]:
        self.asked.append((first, last))
        return {d: n for d, n in self.counts.items()
                if first.isoformat() <= d <= last.isoformat()}


@pytest.mark.parametrize("years", [0.1, 0.99, 1.0, 2.5, 7.2])
def test_counts_back_find_where_history_starts_a_year_a_query(years: float) -> None:
    newest = dt.datetime(2026, 11, 30, 8, tzinfo=UTC)
    first = newest.date() - dt.timedelta(days=int(365 * years))
    api = Counts(day_counts(first, (newest.date() - first).days + 1, 3, empty_share=0.0))
    got = bp.counts_back(api, newest)
    assert got is not None and min(got) == first.isoformat()
    assert got == {d: n for d, n in api.counts.items() if n}
    assert len(api.asked) <= int(years * 365 / 366) + 2
    assert bp.first_day(got) == midnight(first.isoformat()) - DAY


def test_counts_back_give_up_beyond_the_years_asked_and_on_no_counts() -> None:
    newest = dt.datetime(2026, 11, 30, tzinfo=UTC)
    api = Counts({(dt.date(2010, 1, 1) + DAY * i).isoformat(): 1 for i in range(6200)})
    assert bp.counts_back(api, newest, years=5) is None
    assert len(api.asked) == 5
    assert bp.counts_back(Counts({}), newest) is None


class FailingClient:
    def __init__(self) -> None:
        self.calls = 0

    def request(self, method: str, path: str, **kw: Any) -> Any:
        self.calls += 1
        raise NotFoundError("not found: POST /analytics/query")


def test_an_api_without_the_count_query_is_asked_once_and_planned_without() -> None:
    client = FailingClient()
    ask = bp.api_counts(client)  # type: ignore[arg-type]
    assert ask(dt.date(2026, 1, 1), dt.date(2026, 6, 1)) == {}
    assert ask(dt.date(2025, 1, 1), dt.date(2025, 6, 1)) == {}
    assert client.calls == 1
    newest = dt.datetime(2026, 6, 1, tzinfo=UTC)
    assert bp.counts_from(client, midnight("2024-01-01"), newest,  # type: ignore[arg-type]
                          day_counts=ask) is None


class ConcurrentCounts:
    """A client answering `POST /analytics/query` only when `together` queries are in flight
    at once (a barrier): queries sent one after the other fail the test at once."""

    def __init__(self, counts: dict[str, int], together: int) -> None:
        self.counts = counts
        self.barrier = threading.Barrier(together, timeout=5)
        self.asked: list[tuple[str, str]] = []

    def request(self, method: str, path: str, **kw: Any) -> Any:
        body = kw["json"]
        self.asked.append((body["from"], body["to"]))
        self.barrier.wait()
        return {"data": [{"date": d, "count": n} for d, n in self.counts.items()
                         if body["from"] <= d <= body["to"]]}


def test_a_span_of_years_is_counted_with_the_queries_sent_together() -> None:
    """A backfill waits for its counts before its first page: three years are three queries
    in flight at once, not three round trips in a row."""
    first, last = dt.date(2023, 12, 2), dt.date(2026, 11, 30)  # 1,095 days: 3 queries
    counts = {d: n for d, n in day_counts(first, 1095, 5).items() if n}
    client = ConcurrentCounts(counts, together=3)
    got = reconcile.api_day_counts(client, first, last)  # type: ignore[arg-type]
    assert got == counts
    assert sorted(client.asked) == [("2023-12-02", "2024-12-01"), ("2024-12-02", "2025-12-02"),
                                    ("2025-12-03", "2026-11-30")]


class NoStream:
    def request(self, method: str, path: str, **kw: Any) -> Any:
        raise AssertionError(f"unexpected {method} {path}")


def test_a_backfill_from_a_start_date_counts_from_that_date_in_one_go() -> None:
    """From a start date the counts cover [start, newest] at once (not year by year back from
    the newest event until a year begins empty), and a start on a counted day needs no probe
    of the stream."""
    newest = dt.datetime(2026, 6, 1, 9, tzinfo=UTC)
    api = Counts(day_counts(dt.date(2024, 6, 1), 731, 2, empty_share=0.0))
    start = midnight("2024-06-01")
    got, counts = bp.start_from(NoStream(), "/analytics/events", start,  # type: ignore[arg-type]
                                newest, probes=4, day_counts=api)
    assert got == start
    assert api.asked == [(dt.date(2024, 6, 1), dt.date(2026, 6, 1))]
    assert counts == {d: n for d, n in api.counts.items() if n}
    # A start decades back (meaning "everything") still counts back year by year.
    api = Counts(day_counts(dt.date(2024, 6, 1), 731, 2, empty_share=0.0))
    with pytest.raises(AssertionError, match="unexpected GET"):  # then confirms the start
        bp.start_from(NoStream(), "/analytics/events", midnight("1990-01-01"),  # type: ignore[arg-type]
                      newest, probes=4, day_counts=api)
    assert [a for a, _ in api.asked] == [dt.date(2025, 6, 1), dt.date(2024, 5, 31)]


class Stream:
    """The event stream's newest-before lookups and the daily count query, answered from a
    list of timestamps; every request waits at a barrier of `together` parties, so a test
    fails (BrokenBarrierError) unless that many go out at once."""

    def __init__(self, stamps: list[dt.datetime], ignores_to: bool, together: int) -> None:
        self.stamps = sorted(stamps)
        self.ignores_to = ignores_to
        self.barrier = threading.Barrier(together, timeout=5)
        self.asked: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def request(self, method: str, path: str, params: Any = None, json: Any = None,
                **kw: Any) -> Any:
        with self.lock:
            self.asked.append((path, params or json))
        self.barrier.wait()
        if method == "POST":
            first, last = dt.date.fromisoformat(json["from"]), dt.date.fromisoformat(json["to"])
            per: dict[str, int] = {}
            for t in self.stamps:
                if first <= t.date() <= last:
                    per[t.date().isoformat()] = per.get(t.date().isoformat(), 0) + 1
            return {"data": [{"date": d, "count": n} for d, n in sorted(per.items())]}
        to = params.get("to")
        below = [t for t in self.stamps
                 if to is None or self.ignores_to or t < dt.datetime.fromisoformat(
                     to.replace("Z", "+00:00"))]
        return {"data": [{"timestamp": below[-1].isoformat().replace("+00:00", "Z")}]
                if below else []}


@pytest.mark.parametrize("ignores_to", [False, True])
def test_a_backfill_from_a_start_date_asks_its_probes_and_counts_in_one_round_trip(
        ignores_to: bool) -> None:
    """Far from the API each round trip before the first page costs 0.2-0.3 s: the newest
    event, the probe of `to` (at the start date: the newest event is not known yet) and the
    year queries of the counts go out together, and give the answers the requests one after
    the other gave."""
    stamps = [midnight("2024-03-01") + dt.timedelta(hours=7 * i) for i in range(2_000)]
    start, end = midnight("2024-06-01"), midnight("2025-12-01")  # two year queries
    api = Stream(stamps, ignores_to, together=4)
    newest, ignored, counts = bp.opening(api, "/analytics/events", start, end)  # type: ignore[arg-type]
    assert newest == stamps[-1] and ignored is ignores_to
    assert counts is not None
    assert sum(counts.values()) == sum(1 for t in stamps if t.date() >= start.date())
    assert max(counts) == stamps[-1].date().isoformat()  # nothing after the newest event's day
    probes = [p for path, p in api.asked if path == "/analytics/events"]
    assert sorted(p.get("to", "") for p in probes) == ["", "2024-06-01T00:00:00.000Z"]


def test_an_opening_from_decades_back_leaves_the_counts_to_the_year_by_year_search() -> None:
    """A start date decades back means "everything": asking a query per year from it would
    cost dozens of requests, so only the two probes go out and start_from counts back from
    the newest event."""
    stamps = [midnight("2025-01-01") + dt.timedelta(days=i) for i in range(100)]
    api = Stream(stamps, ignores_to=False, together=2)
    newest, ignored, counts = bp.opening(api, "/analytics/events",  # type: ignore[arg-type]
                                         midnight("1990-01-01"), None)
    assert (newest, ignored, counts) == (stamps[-1], False, None)
    assert [path for path, _ in api.asked] == ["/analytics/events"] * 2
