"""Unit tests of the event walk's edges at whole-second precision (walks.py, reconcile.py,
timeline.py).

An API that sends whole-second timestamps (the docs' examples) may hold its events at a finer
precision and filter `from`/`to` on what it holds: many events are shown as the same second,
and an edge inside a second splits them. The fake stream here does exactly that (an in-process
stand-in for the paginated endpoint, small enough to check every page size and expiry pattern);
the walks must yield every event once whatever the page size, the ties and the restarts.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from growthos_source import instants, timeline
from growthos_source.errors import CursorExpiredError
from growthos_source.http.pagination import Page
from growthos_source.incremental import iso_z, parse_ts
from growthos_source.walks import resume_before, walk_events

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


class SecondsStream:
    """Events held at microsecond precision, served newest first with whole-second timestamps;
    `from`/`to` filter the held instants. Every `expire_every`-th cursored request answers
    cursor_expired."""

    def __init__(self, held: list[tuple[dt.datetime, str]], expire_every: int = 0) -> None:
        self.held = sorted(held, reverse=True)
        self.expire_every = expire_every
        self.cursored = 0
        self.requests = 0

    def rows(self, lo: dt.datetime | None, hi: dt.datetime | None) -> list[dict[str, Any]]:
        return [{"id": i, "timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ")}
                for t, i in self.held
                if (lo is None or t >= lo) and (hi is None or t < hi)]

    def paginate(self, path: str, params: dict[str, Any] | None = None, *,
                 page_size: int = 100) -> Iterator[Page]:
        p = dict(params or {})
        rows = self.rows(parse_ts(p["from"]) if p.get("from") else None,
                         parse_ts(p["to"]) if p.get("to") else None)
        for start in range(0, max(len(rows), 1), page_size):
            if start:
                self.cursored += 1
                if self.expire_every and self.cursored % self.expire_every == 0:
                    raise CursorExpiredError("the pagination cursor expired",
                                             code="cursor_expired")
            self.requests += 1
            yield Page(data=rows[start:start + page_size])


def _busy_seconds(n: int, seed: int) -> list[tuple[dt.datetime, str]]:
    """n events in a few seconds: most seconds hold many events (ties at every page edge)."""
    rnd = random.Random(seed)
    return [(T0 + dt.timedelta(seconds=rnd.randrange(6), microseconds=rnd.randrange(10**6)),
             f"evt_{k:04d}") for k in range(n)]


@pytest.mark.parametrize("page_size", [1, 2, 3, 5, 7, 20])
@pytest.mark.parametrize("expire_every", [0, 1, 2, 3])
def test_a_restarted_walk_yields_each_event_once_at_whole_seconds(page_size: int,
                                                                  expire_every: int) -> None:
    for seed in range(4):
        held = _busy_seconds(40, seed)
        stream = SecondsStream(held, expire_every)
        params = {"from": iso_z(T0), "to": iso_z(T0 + dt.timedelta(seconds=6))}
        ids = Counter(r["id"] for rows in walk_events(stream, "/analytics/events",  # type: ignore[arg-type]
                                                      params, page_size=page_size)
                      for r in rows)
        assert ids == Counter(i for _, i in held), (seed, page_size, expire_every)


def test_resuming_before_a_whole_second_includes_that_whole_second() -> None:
    assert resume_before("2026-05-01T12:00:03Z") == "2026-05-01T12:00:04.000Z"
    assert resume_before("2026-05-01T12:00:03.250Z") == "2026-05-01T12:00:03.251Z"


def test_instant_windows_cover_the_second_a_whole_second_value_stands_for() -> None:
    """A warehouse value with no fraction may be any instant of its second at the API: its
    re-read window covers the second, so the events the API holds there are all read again
    (a 1 ms window read none of them, and the replacement then deleted them)."""
    held = _busy_seconds(60, 1)
    stream = SecondsStream(held)
    shown = sorted({r["timestamp"] for r in stream.rows(None, None)})
    for span in (dt.timedelta(milliseconds=1), dt.timedelta(seconds=2), dt.timedelta(hours=1)):
        wins = instants.instant_windows(shown, span)
        got = Counter(r["id"] for lo, hi in wins for r in stream.rows(lo, hi))
        assert got == Counter(i for _, i in held), span
    one = instants.instant_windows(["2026-05-01T12:00:03.000Z"], dt.timedelta(0))
    assert one == [(T0 + dt.timedelta(seconds=3), T0 + dt.timedelta(seconds=4))]
    # A value with milliseconds covers its millisecond, and a window never shrinks.
    ms = instants.instant_windows(["2026-05-01T12:00:03.250Z", "2026-05-01T12:00:03.000Z"],
                                   dt.timedelta(seconds=5))
    assert ms == [(T0 + dt.timedelta(seconds=3), T0 + dt.timedelta(seconds=4))]
    assert instants.instant_end(T0 + dt.timedelta(microseconds=250_400)) == \
        T0 + dt.timedelta(milliseconds=251)


def test_window_edges_fall_on_whole_seconds() -> None:
    """Windows of a fractional size still split the stream at seconds' starts."""
    wins = timeline.windows(T0, T0 + dt.timedelta(seconds=10), dt.timedelta(seconds=2.6))
    edges = [a for a, _ in wins] + [wins[-1][1]]
    assert all(e is not None and e.microsecond == 0 for e in edges)
    assert edges[0] == T0 and edges[-1] == T0 + dt.timedelta(seconds=10)
    stream = SecondsStream(_busy_seconds(50, 2))
    got = Counter(r["id"] for a, b in wins
                  for rows in walk_events(stream, "/analytics/events",  # type: ignore[arg-type]
                                          {"from": iso_z(a), "to": iso_z(b)}, page_size=3)
                  for r in rows)
    assert got == Counter(i for _, i in stream.held)
    tiny = timeline.windows(T0, T0 + dt.timedelta(seconds=3), dt.timedelta(milliseconds=10))
    assert len(tiny) == 3
