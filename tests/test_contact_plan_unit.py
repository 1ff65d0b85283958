"""Unit tests of contact_plan: how many created_at windows the contact list is walked in after
its first page, what the planning costs in requests, and that the first page plus the windows
cover every contact whatever the list's order, the filters' edges or the timestamps' precision.

The list is an in-memory fake of GET /contacts (the planning's only dependency); the real-HTTP
tests are in test_source_contact_windows.py.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from typing import Any

import pytest

from growthos_source.contact_plan import (
    PAGES_PER_WINDOW,
    WINDOWS_PER_WALK,
    Known,
    known_from,
    pages_left,
    plan,
    quantiles,
    window_pages,
    windows,
)
from growthos_source.http import Page
from growthos_source.incremental import parse_ts

END = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
BASE = {"created_before": "2026-06-01T00:00:00.000Z"}  # a fixed end instead of now
PAGE = 100


class Contacts:
    """GET /contacts over `n` contacts created across two years (evenly, or `growing`: signups
    rising linearly), served in `order` ("asc", "desc" or "shuffled"), with inclusive or
    exclusive filter edges, whole-second or millisecond timestamps, some filters possibly
    ignored, and with `total` a count in the envelope."""

    def __init__(self, n: int, order: str = "asc", inclusive: bool = False,
                 seconds: bool = False, ignore: tuple[str, ...] = (), seed: int = 1,
                 total: bool = False, growing: bool = False) -> None:
        rnd = random.Random(seed)
        span = (END - dt.timedelta(days=730)).timestamp(), END.timestamp() - 1
        stamps = sorted(span[0] + (span[1] - span[0]) * rnd.random() ** (0.5 if growing else 1)
                        for _ in range(n))
        fmt = "%Y-%m-%dT%H:%M:%SZ" if seconds else "%Y-%m-%dT%H:%M:%S.%f"
        self.rows = [{"id": f"con_{i:05d}", "created_at": _render(t, fmt, seconds)}
                     for i, t in enumerate(stamps)]
        if order == "desc":
            self.rows.reverse()
        elif order == "shuffled":
            rnd.shuffle(self.rows)
        self.inclusive, self.ignore, self.total = inclusive, ignore, total
        self.requests = 0

    def select(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        out = self.rows
        for name in ("created_after", "created_before"):
            if name in params and name not in self.ignore:
                at = parse_ts(params[name])
                out = [r for r in out if _inside(parse_ts(r["created_at"]), name, at,
                                                  self.inclusive)]
        return out

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                **_: Any) -> dict[str, Any]:
        self.requests += 1
        p = dict(params or {})
        return {"data": self.select(p)[:int(p.get("limit", PAGE))]}

    def first_page(self) -> Page:
        self.requests += 1
        rows = self.select(dict(BASE))
        extra = {"total": len(rows)} if self.total else {}
        return Page(data=rows[:PAGE], extra=extra, more=len(rows) > PAGE)


def _render(t: float, fmt: str, seconds: bool) -> str:
    d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    return d.strftime(fmt) if seconds else d.strftime(fmt)[:-3] + "Z"


def _inside(t: dt.datetime, name: str, at: dt.datetime, inclusive: bool) -> bool:
    if name == "created_after":
        return t > at or (inclusive and t == at)
    return t < at or (inclusive and t == at)


def _plan(api: Contacts, walks: int = 4, known: Known | None = None
          ) -> tuple[Page, list[dict[str, Any]], int]:
    """(first page, windows, requests the planning sent after the first page)."""
    first = api.first_page()
    before = api.requests
    wins = plan(api, "/contacts", dict(BASE), first, page_size=PAGE, walks=lambda: walks,
                known=known)
    return first, wins, api.requests - before


def _assert_covers(api: Contacts, first: Page, wins: list[dict[str, Any]]) -> None:
    got = {r["id"] for r in first.data}
    for w in wins:
        got |= {r["id"] for r in api.select(w)}
    assert got == {r["id"] for r in api.rows}


ORDERS = ["asc", "desc", "shuffled"]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("n", [0, 1, 100, 250, 1999, 3000])
def test_a_short_list_is_walked_on_from_its_first_page_with_no_probe(order: str, n: int) -> None:
    """Up to ~40 pages: no windows and no probe. One page: nothing but that page."""
    api = Contacts(n, order)
    first, wins, probes = _plan(api)
    assert first.more == (n > PAGE)
    assert (wins, probes) == ([], 0)


@pytest.mark.parametrize("seconds", [False, True])
@pytest.mark.parametrize("inclusive", [False, True])
@pytest.mark.parametrize("order", ORDERS)
def test_a_large_list_is_split_exactly_in_any_order_and_at_either_edge(
        order: str, inclusive: bool, seconds: bool) -> None:
    """In creation order the first page tells the size; newest first or in no order, a total
    in the envelope does (else see the test below)."""
    api = Contacts(20_000, order, inclusive=inclusive, seconds=seconds, total=order != "asc")
    first, wins, probes = _plan(api, walks=4)
    assert 2 <= len(wins) <= min(4 * WINDOWS_PER_WALK, 199 // 10)
    _assert_covers(api, first, wins)
    # Two probes of the filters; newest first, where history starts is searched for too.
    assert probes == 2 if order != "desc" else 2 < probes <= 2 + 8 * 4


@pytest.mark.parametrize("order", ["desc", "shuffled"])
def test_in_another_order_without_a_total_the_first_sync_is_one_walk_and_the_next_splits(
        order: str) -> None:
    api = Contacts(20_000, order)
    _, wins, probes = _plan(api, walks=4)
    assert (wins, probes) == ([], 0)
    rows = sorted(api.rows, key=lambda r: str(r["created_at"]))
    known = Known(parse_ts(rows[0]["created_at"]), parse_ts(rows[-1]["created_at"]), len(rows))
    first, wins, probes = _plan(api, walks=4, known=known)
    assert len(wins) == 199 // PAGES_PER_WINDOW and probes == 2
    _assert_covers(api, first, wins)


def test_windows_follow_the_pages_left_in_creation_order() -> None:
    """20,000 contacts, 199 pages after the first: about one window per 20 pages (a page of
    100 tells the history's length to ~10-20 %), never more than one per 10."""
    api = Contacts(20_000, "asc")
    first, wins, _ = _plan(api, walks=16)
    assert 199 // PAGES_PER_WINDOW * 0.7 <= len(wins) <= 199 // 10
    _assert_covers(api, first, wins)
    # Signups that grew: the oldest page covers more than its share of history, and fewer
    # windows are walked (fewer requests; the next run sizes from what this one saw).
    api = Contacts(20_000, "asc", growing=True)
    _, wins, probes = _plan(api, walks=16)
    assert (wins, probes) == ([], 0)  # ~14 pages shown: one walk


def test_a_total_in_the_envelope_sizes_the_windows() -> None:
    api = Contacts(20_000, "shuffled", total=True)
    first, wins, probes = _plan(api, walks=16)
    assert len(wins) == math.ceil((20_000 - PAGE) / PAGE) // PAGES_PER_WINDOW
    _assert_covers(api, first, wins)
    api = Contacts(3_500, "shuffled", total=True)  # 34 pages follow: not worth windows
    _, wins, probes = _plan(api, walks=16)
    assert (wins, probes) == ([], 0)


@pytest.mark.parametrize("ignore", [("created_after",), ("created_before",),
                                    ("created_after", "created_before")])
@pytest.mark.parametrize("order", ORDERS)
def test_an_api_ignoring_a_filter_is_walked_whole(ignore: tuple[str, ...], order: str) -> None:
    """Windows would each read the whole list: the probes notice, and no window is made."""
    api = Contacts(20_000, order, ignore=ignore, total=True)
    _, wins, probes = _plan(api, walks=4)
    assert wins == [] and probes <= 2


def test_what_an_earlier_whole_walk_saw_spares_the_probes() -> None:
    api = Contacts(20_000, "asc")
    rows = sorted(api.rows, key=lambda r: str(r["created_at"]))
    known = known_from({"from": rows[0]["created_at"], "newest": rows[-1]["created_at"],
                        "rows": len(rows), "split": True})
    assert known is not None and known.checked
    first, wins, probes = _plan(api, walks=16, known=known)
    assert probes == 0 and len(wins) == 199 // PAGES_PER_WINDOW
    _assert_covers(api, first, wins)
    # A walk that never split has not checked the filters: probed once.
    unchecked = Known(known.start, known.newest, known.rows, checked=False)
    _, wins, probes = _plan(api, walks=16, known=unchecked)
    assert probes == 2 and len(wins) == 199 // PAGES_PER_WINDOW
    # One that saw a smaller list (it grew since): the first page tells instead.
    small = Known(known.start, known.start, 40, checked=True)
    _, wins, probes = _plan(api, walks=16, known=small)
    assert probes == 0 and 199 // PAGES_PER_WINDOW * 0.7 <= len(wins) <= 199 // 10


def test_pages_left_and_window_count() -> None:
    t = [END - dt.timedelta(days=10 - d) for d in range(3)]  # 2 days on the page, 8 after
    assert pages_left(t, 100, 100, total=None, known=None, start=None, end=END) == 4
    assert pages_left(t[::-1], 100, 100, total=None, known=None, start=None, end=END) is None
    assert pages_left(t[::-1], 100, 100, total=None, known=None,
                      start=t[0] - dt.timedelta(days=6), end=END) == 3
    assert pages_left([t[1], t[0], t[2]], 100, 100, total=None, known=None, start=None,
                      end=END) is None
    assert pages_left([t[0]] * 3, 100, 100, total=None, known=None, start=None,
                      end=END) == 10**9
    assert pages_left(t, 100, 100, total=4_050, known=None, start=None, end=END) == 40
    assert window_pages(39, 5) == [39]
    assert window_pages(40, 5) == [20, 20]
    assert len(window_pages(10**9, 5)) <= 5 * WINDOWS_PER_WALK
    assert known_from({"from": "x"}) is None and known_from(None) is None


@pytest.mark.parametrize("walks", [2, 4, 8, 16, 64])
@pytest.mark.parametrize("left", [40, 199, 1_999, 20_000])
def test_windows_shrink_so_the_walks_in_flight_end_together(left: int, walks: int) -> None:
    """Largest first, each a share of what is left, the last ones PAGES_PER_WINDOW: the walks
    in flight near the end read small windows (equal windows left one walk reading a whole
    window alone). Every page is planned once, and no window is below the floor."""
    sizes = window_pages(left, walks)
    assert sum(sizes) == left and len(sizes) <= walks * WINDOWS_PER_WALK
    assert min(sizes) >= PAGES_PER_WINDOW
    assert sizes[1:] == sorted(sizes[1:], reverse=True) and sizes[0] >= sizes[1]
    if len(sizes) >= 2 * walks:  # the walks in flight at the end each read a smallest one
        assert sizes[-walks:] == [min(sizes)] * walks
    # The floor rises only where it would make more windows than WINDOWS_PER_WALK per walk.
    assert min(sizes) == PAGES_PER_WINDOW or len(sizes) > walks * WINDOWS_PER_WALK // 2


def test_windows_span_the_history_in_proportion_newest_and_largest_first() -> None:
    """The first window walked is the newest (open-ended: contacts created during the run
    land in it) and the largest; the last is the oldest, with no lower bound; each spans time
    in proportion to its planned pages."""
    lo = END - dt.timedelta(days=1_000)
    sizes = window_pages(1_999, 8)
    wins = windows(dict(BASE), lo, END, sizes)
    assert len(wins) == len(sizes)
    assert "created_after" in wins[0] and wins[0]["created_before"] == BASE["created_before"]
    assert "created_after" not in wins[-1]
    spans = []
    for w in wins[1:-1]:
        a, b = parse_ts(w["created_after"]), parse_ts(w["created_before"])
        spans.append((b - a - dt.timedelta(seconds=1)) / (END - lo))
    for share, size in zip(spans, sizes[1:-1], strict=True):
        assert abs(share - size / sum(sizes)) < 1e-6
    # Consecutive windows (newest first) overlap by one second: nothing falls between them.
    for newer, older in itertools.pairwise(wins):
        assert parse_ts(newer["created_after"]) + dt.timedelta(seconds=1) == \
            parse_ts(older["created_before"])


def test_quantiles_kept_by_a_whole_walk_size_the_next_windows_where_signups_bunch() -> None:
    """A project that imported a third of its list on its first day, then grew: windows even
    in time put the import in one window. From the quantiles an earlier walk kept (one
    `created_at` per ten rows), each window holds about its planned pages; parsed back from
    the marks as they are stored; unreadable quantiles fall back to time."""
    api = Contacts(20_000, "asc", growing=True)
    day_one = api.rows[0]["created_at"]
    for r in api.rows[: len(api.rows) // 3]:
        r["created_at"] = day_one
    rows = sorted(api.rows, key=lambda r: str(r["created_at"]))
    shape = {"from": rows[0]["created_at"], "newest": rows[-1]["created_at"],
             "rows": len(rows), "split": True,
             "quantiles": quantiles([str(r["created_at"]) for r in rows[::10]])}
    known = known_from(shape)
    assert known is not None and len(known.quantiles) == 33
    first, wins, probes = _plan(api, walks=4, known=known)
    assert probes == 0
    _assert_covers(api, first, wins)
    held = [math.ceil(len(api.select(w)) / PAGE) for w in wins]
    # Walked largest first, each about as large as planned (the import's windows merged
    # into one, walked first), ending on small ones.
    assert held[0] >= len(rows) / 3 / PAGE
    assert all(b <= a + 2 for a, b in itertools.pairwise(held)), held
    assert held[-1] <= PAGES_PER_WINDOW + 2 and held[-2] <= PAGES_PER_WINDOW + 2, held
    # Without quantiles the same list splits evenly in time: a window walked last holds
    # several windows' worth (signups grew), and the walks in flight end one by one.
    even = Known(known.start, known.newest, known.rows, checked=True)
    _, wins_even, _ = _plan(api, walks=4, known=even)
    held_even = [math.ceil(len(api.select(w)) / PAGE) for w in wins_even]
    assert held_even[-1] > 2 * PAGES_PER_WINDOW, held_even
    assert known_from({**shape, "quantiles": ["not a time"] * 5}).quantiles == ()  # type: ignore[union-attr]
    assert quantiles(["2026-01-01T00:00:00Z"] * 2) == []
