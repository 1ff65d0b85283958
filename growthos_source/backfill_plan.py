"""Windows of a chunked event backfill planned from the API's own daily event counts.

Every window of the event stream is a walk of its own, and every walk ends with a partial page.
Windows of a fixed length (7 days) hold however many events the history has there: two years of
30,000 events are 105 windows of ~3 pages, so a third of the backfill's requests were partial
pages (Free plan: 405 requests for 300 pages' worth). The Management API says in one request how
many events it holds per day (`POST /analytics/query`, `event_count` by `day`, up to a year a
request; the same query the count reconciliation uses, see reconcile.py), so the windows can be
cut at day boundaries to hold about `WINDOW_PAGES` pages each: one partial page per hundred.

The same counts tell where history starts: the year-by-year queries back from the newest event
stop at the first year whose first day is empty, and one one-row request confirms that nothing
lies before the first counted day (the search of timeline.py costs ~20 requests in a row).

The counts only size the windows, they never bound what is read: windows cover the whole range
without gaps, the last one is open-ended, and a start the counts suggest is used only once the
stream itself confirms it. Wrong counts (another time zone's days, events still being
processed, an API without the query) cost requests, never events; without counts, or when the
user set `events_window_days`, windows of that fixed length are used.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from . import reconcile, timeline
from .errors import GrowthOSError
from .http import GrowthOSClient

if TYPE_CHECKING:
    from .prefetch import EventFeed

logger = logging.getLogger("growthos_source")

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)
# Pages a window should hold: its partial last page is then ~1% of its requests.
WINDOW_PAGES = 100
# A chunk that would take this many of the windows left, or more, holds the last ~1/HOLD_FROM
# of them back for one more (chunk_windows).
HOLD_FROM = 20
# Years of counts asked for, back from the newest event, before the search of timeline.py is
# cheaper than more count queries.
MAX_YEARS = 10
Bounds = tuple[dt.datetime, dt.datetime | None]
DayCounts = Callable[[dt.date, dt.date], dict[str, int]]


def api_counts(client: GrowthOSClient) -> DayCounts:
    """The API's events per day over [first, last] (reconcile.api_day_counts), or an empty dict
    when the API cannot answer (no such query, a key without the analytics scope, an answer of
    another shape; asked once): the plan then falls back to fixed windows."""
    failed: list[str] = []

    def counts(first: dt.date, last: dt.date) -> dict[str, int]:
        if failed:
            return {}
        try:
            return reconcile.api_day_counts(client, first, last)
        except (GrowthOSError, KeyError, TypeError, ValueError) as exc:
            failed.append(exc.__class__.__name__)
            logger.info("events: no daily event counts from the API (%s): the backfill's "
                        "windows are events_window_days long", failed[0])
            return {}
    return counts


def counts_back(day_counts: DayCounts, newest: dt.datetime,
                years: int = MAX_YEARS) -> dict[str, int] | None:
    """The API's non-zero daily counts from the newest event's day back to where they begin,
    a query per `reconcile.QUERY_DAYS` days, or None when there are none or they reach back
    further than `years` (the caller then searches instead)."""
    out: dict[str, int] = {}
    hi = newest.astimezone(UTC).date()
    for _ in range(years):
        lo = hi - dt.timedelta(days=reconcile.QUERY_DAYS - 1)
        got = {d: n for d, n in day_counts(lo, hi).items() if n > 0}
        out.update(got)
        if not got or min(got) > lo.isoformat():  # history begins inside [lo, hi]
            return out or None
        hi = lo - DAY
    return None


def first_day(counts: dict[str, int]) -> dt.datetime:
    """Where a backfill by these counts starts: the day before the first counted one, at
    00:00 UTC (the API's days may be the project's, up to 14 hours off UTC)."""
    d = dt.date.fromisoformat(min(counts)) - DAY
    return dt.datetime(d.year, d.month, d.day, tzinfo=UTC)


def history(client: GrowthOSClient, path: str, newest: dt.datetime, probes: int,
            day_counts: DayCounts | None = None, use_counts: bool = True,
            ) -> tuple[tuple[dt.datetime | None, dt.datetime], dict[str, int] | None]:
    """((start, newest), counts): where the event stream's history starts (None: the API
    ignores `to`, or it could not be found) and the daily counts to plan its windows with
    (None: plan fixed windows). Asks whether the API ignores `to` (one request), then the
    counts, then confirms their start with one request; falls back to timeline's search (at
    once without `use_counts`)."""
    if timeline.ignores_to(client, path, newest):
        return (None, newest), None
    counts = counts_back(day_counts or api_counts(client), newest) if use_counts else None
    if counts:
        start = first_day(counts)
        if not timeline.has_before(client, path, start):
            return (start, newest), counts
        logger.info("events: the stream holds events before the API's first counted day; "
                    "searching where they begin")
    bounds = timeline.history_bounds(client, path, probes, newest=newest, checked_to=True)
    return (bounds or (None, newest)), None


def opening(client: GrowthOSClient, path: str, start: dt.datetime, end: dt.datetime | None,
            ) -> tuple[dt.datetime | None, bool, dict[str, int] | None]:
    """(the newest event, whether the API ignores `to`, the daily counts from `start`'s day on)
    for a backfill from a start date, in one round trip instead of three: the requests go out
    together. Far from the API each round trip is 0.2-0.3 s before the first page.

    `to` is probed at `start`, not at the newest event (not known yet): an API that ignores it
    answers with its newest event, at or after `start` whenever there is anything to
    backfill. The counts are asked up to `end` or today (the newest event's day is not known
    yet either; at most one more query than up to it) and kept up to the newest event's day;
    None when `start` lies more than MAX_YEARS back (`start_from` then asks year by year back
    from the newest event)."""
    last = (end or dt.datetime.now(UTC)).astimezone(UTC).date()
    first = start.astimezone(UTC).date()
    near = (last - first).days < reconcile.QUERY_DAYS * MAX_YEARS
    with ThreadPoolExecutor(2, thread_name_prefix="growthos-probe") as pool:
        newest_at = pool.submit(timeline.newest, client, path)
        ignored_at = pool.submit(timeline.ignores_to, client, path, start)
        got = api_counts(client)(first, last) if near and first <= last else {}
        newest, ignored = newest_at.result(), ignored_at.result()
    if not near:
        return newest, ignored, None
    top = newest.astimezone(UTC).date().isoformat() if newest is not None else ""
    return newest, ignored, {d: n for d, n in got.items() if n > 0 and d <= top}


def start_from(client: GrowthOSClient, path: str, start: dt.datetime, newest: dt.datetime,
               probes: int, day_counts: DayCounts | None = None,
               known: dict[str, int] | None = None,
               ) -> tuple[dt.datetime, dict[str, int] | None]:
    """(start, counts) of a backfill from a start date: `start`, or the day the events begin
    when that is later (a start date decades back means "everything"), and the daily counts
    to plan with. The counts from `start` on (a request per year, sent together; year by year
    back from the newest event when `start` lies more than MAX_YEARS back) say where events
    begin (one request confirms it when `start` is earlier); without them, timeline's
    search. `known`: the counts from `start` on, asked already (`opening`)."""
    ask = day_counts or api_counts(client)
    if known is not None:
        counts: dict[str, int] | None = known or None
    elif newest - start <= dt.timedelta(days=reconcile.QUERY_DAYS * MAX_YEARS):
        # From the start date on, at once (the queries go out together), rather than year
        # by year back from the newest event until a year begins empty.
        counts = counts_from(client, start, newest, ask)
    else:
        counts = counts_back(ask, newest)
    if counts:
        begin = first_day(counts)
        if start >= begin or not timeline.has_before(client, path, begin):
            return max(start, begin), counts
    return timeline.history_start(client, path, start, newest, probes=probes), None


def counts_from(client: GrowthOSClient, start: dt.datetime, newest: dt.datetime | None,
                day_counts: DayCounts | None = None) -> dict[str, int] | None:
    """The API's daily counts from `start`'s day to the newest event's (None without any)."""
    if newest is None or newest < start:
        return None
    ask = day_counts or api_counts(client)  # a request per QUERY_DAYS (reconcile.py)
    got = ask(start.astimezone(UTC).date(), newest.astimezone(UTC).date())
    return {d: n for d, n in got.items() if n > 0} or None


def windows(start: dt.datetime, end: dt.datetime | None, counts: dict[str, int], rows: int,
            newest: dt.datetime | None) -> list[Bounds]:
    """[start, end) cut at UTC day boundaries into windows of at least `rows` events by
    `counts` (the last one takes the rest; open-ended without `end`, as timeline.windows).
    Deterministic from (start, counts): a later chunk that plans again from an earlier
    window's end gets the same windows the feed read ahead."""
    out: list[Bounds] = []
    a, held = start, 0
    for day in sorted(counts):
        d = dt.date.fromisoformat(day)
        b = dt.datetime(d.year, d.month, d.day, tzinfo=UTC) + DAY
        if b <= a:
            continue
        held += counts[day]
        if held < rows:
            continue
        if (end is not None and b >= end) or (newest is not None and b > newest):
            break
        out.append((a, b))
        a, held = b, 0
    out.append((a, end))
    return out


def chunk_windows(base: int, walks: int, wins: list[Bounds], feed: EventFeed) -> int:
    """How many of the backfill's remaining windows `wins` the next chunk loads, `base` being
    what the user asked for (`backfill_windows`).

    Planned windows hold ~100 pages each, so a chunk takes one for every walk the rate and
    latency need (`walks`; far away, dozens) rather than splitting a few: each split ends a
    walk early, on a partial page, and walks beyond the chunk's windows read the next chunk
    ahead, so the chunk takes longer and more waits in memory. It also takes up to as many
    again of the windows after it that the feed has read to their end already: their pages
    wait in memory either way, and each chunk is a dlt run of its own (~1 s).

    A chunk that would take (nearly) all of the many windows left holds their last ~5 % back
    for one more: the walks read them while dlt loads this chunk, and only that small chunk's
    load follows the backfill's last request (far away, where a chunk is one window per walk,
    one chunk of 500,000 rows had its whole load after it). Windows read to their end are
    never held back, nor is anything of fewer than `HOLD_FROM` windows left.
    """
    n = max(base, walks)
    n += feed.read_ahead(wins[n:], n)
    left = len(wins)
    keep = left - math.ceil(left / HOLD_FROM)
    if left >= HOLD_FROM and n > keep:
        n = max(keep, feed.read_ahead(wins, left))
    return min(n, left)
