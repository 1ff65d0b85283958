"""Time windows for the event stream: find where history starts, split a range into windows.

The event stream is documented as newest first with `from` (inclusive) / `to` (exclusive)
filters, so the earliest event can be found with a few one-row requests instead of a walk.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .http import GrowthOSClient
from .incremental import iso_z, parse_ts

DAY = dt.timedelta(days=1)


def _newest_before(client: GrowthOSClient, path: str, to: dt.datetime | None) -> dt.datetime | None:
    params: dict[str, Any] = {"limit": 1}
    if to is not None:
        params["to"] = iso_z(to)
    body = client.request("GET", path, params=params)
    data = body.get("data") or []
    if data and _stamp(data[0]) is None:
        # The newest event has no usable timestamp (it goes to the rejects): the newest of a
        # page that has one bounds the stream instead.
        params["limit"] = 100
        data = client.request("GET", path, params=params).get("data") or []
    return next((t for t in map(_stamp, data) if t is not None), None)


def _stamp(event: Any) -> dt.datetime | None:
    try:
        return parse_ts(event["timestamp"]) if event.get("timestamp") is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def newest(client: GrowthOSClient, path: str) -> dt.datetime | None:
    """Timestamp of the newest event (one one-row request), or None without events."""
    return _newest_before(client, path, None)


def has_before(client: GrowthOSClient, path: str, before: dt.datetime) -> bool:
    """True if the stream holds an event before `before` (one one-row request)."""
    return _newest_before(client, path, before) is not None


def ignores_to(client: GrowthOSClient, path: str, at: dt.datetime) -> bool:
    """True if the stream answers `to=at` (exclusive) with an event at or after it: the API
    ignores the time filters, and windows by `from`/`to` would each read the whole stream.
    Asked at the newest event, or at any instant before events the stream holds."""
    before = _newest_before(client, path, at)
    return before is not None and before >= at


def history_bounds(client: GrowthOSClient, path: str, probes: int = 1, *,
                   newest: dt.datetime | None = None, precision: float = 0.0,
                   checked_to: bool = False,
                   ) -> tuple[dt.datetime | None, dt.datetime] | None:
    """(earliest event's day start, newest event time), or None when there are no events.
    The start is None when it cannot be searched for: the API ignores `to`, or events reach
    back over 50 years (the same thing in practice).

    Searches on `to` with one-row pages (see `_earliest`), `probes` requests at a time, to
    within a day, or within `precision` x the history's length when that is longer. `newest`:
    the newest event's time when the caller asked already (saves that request); `checked_to`:
    the caller found already that the API keeps `to` (saves that one).
    """
    if newest is None:
        newest = _newest_before(client, path, None)
    if newest is None:
        return None
    if not checked_to and ignores_to(client, path, newest):
        return None, newest
    lo, found = _earliest(lambda t: _newest_before(client, path, t) is not None, newest, probes,
                          precision=precision)
    if not found:
        return None, newest
    start = lo.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, newest


def history_start(client: GrowthOSClient, path: str, start: dt.datetime, newest: dt.datetime,
                  probes: int = 1) -> dt.datetime:
    """`start`, or the day the events begin when that is later. A backfill from a date long
    before the first event (`--start-date 2000-01-01`: "everything") would otherwise walk every
    empty window in between: 20,000 events two years deep from 2000 took 1,879 requests and
    160 s instead of 285 and 30 s, a dlt run per chunk of empty windows. One one-row request
    when there are events before `start`; else the search of `history_bounds`."""
    if _newest_before(client, path, start) is not None:
        return start
    lo, found = _earliest(lambda t: _newest_before(client, path, t) is not None, newest, probes)
    if not found:
        return start
    return max(start, lo.replace(hour=0, minute=0, second=0, microsecond=0))


FAR = dt.timedelta(days=365 * 50)  # how far back a search for the first record goes
# Concurrent probes per round of the search: more rounds are cheaper than more requests once a
# round takes less time than its requests take of the rate limit.
MAX_PROBES = 8


def _earliest(exists_before: Callable[[dt.datetime], bool], end: dt.datetime,
              probes: int = 1, precision: float = 0.0) -> tuple[dt.datetime, bool]:
    """(lo, found): no record before lo, and lo within a day of where records start (or within
    `precision` x the length of history, if longer: callers that only spread walks over the
    history need no more, and each round of the search costs requests). Asks "is there a
    record before t" (true for every t after the first record, false before it). found is
    False when records reach back over 50 years; lo is then just the oldest instant probed.

    One probe at a time this is an exponential then binary search (~2*log2(days) requests in a
    row, ~1 s at 50 ms a request, while the rate limit would allow a hundred). With `probes`
    > 1 each round asks `probes` instants at once: first `end` minus 1, 4, 16, ... days, then
    evenly spaced instants of the remaining interval, which shrinks `probes + 1`-fold a round
    (two years of history: 5 rounds of 8 requests instead of 21 rounds of 1).
    """
    probes = min(probes, MAX_PROBES)

    def close_enough(lo: dt.datetime, hi: dt.datetime) -> bool:
        return hi - lo <= max(DAY, (end - hi) * precision)

    if probes <= 1:
        return _earliest_serial(exists_before, end, close_enough)
    with ThreadPoolExecutor(probes, thread_name_prefix="growthos-search") as pool:
        # exponential phase: steps of 4**k days until one has no record before it
        k, prev = 0, None
        while True:
            steps = [DAY * 4 ** e for e in range(k, k + probes) if 4 ** e <= FAR.days * 4]
            steps = steps or [FAR * 4]
            found = list(pool.map(lambda st: exists_before(end - st), steps))
            if not all(found):
                i = found.index(False)
                lo = end - steps[i]
                hi = end - steps[i - 1] if i else (end - prev if prev is not None else end)
                break
            if steps[-1] > FAR:
                return end - steps[-1], False
            k, prev = k + probes, steps[-1]
        # no record before lo; some before hi (or hi = end)
        while not close_enough(lo, hi):
            points = [lo + (hi - lo) * (j + 1) / (probes + 1) for j in range(probes)]
            found = list(pool.map(exists_before, points))
            j = found.index(True) if any(found) else probes
            lo, hi = (points[j - 1] if j else lo), (points[j] if j < probes else hi)
    return lo, True


def _earliest_serial(exists_before: Callable[[dt.datetime], bool], end: dt.datetime,
                     close_enough: Callable[[dt.datetime, dt.datetime], bool],
                     ) -> tuple[dt.datetime, bool]:
    step = DAY
    while exists_before(end - step):
        if step > FAR:
            return end - step, False
        step *= 2
    lo, hi = end - step, (end - step / 2 if step > DAY else end)
    while not close_enough(lo, hi):  # no record before lo; some before hi (or hi = end)
        mid = lo + (hi - lo) / 2
        if exists_before(mid):
            hi = mid
        else:
            lo = mid
    return lo, True


def windows(start: dt.datetime, end: dt.datetime | None, size: dt.timedelta,
            newest: dt.datetime | None = None) -> list[tuple[dt.datetime, dt.datetime | None]]:
    """Split [start, end) into windows of `size`, newest last. With no `end`, the last window is
    open-ended (it also catches events that arrive while the sync runs).

    `size` is taken in whole seconds (at least one): an API that sends whole-second timestamps
    may hold an event shown as `14:22:05Z` anywhere in that second, and an edge inside it would
    let the upper window's walk drop that event as below its `from` while the lower window's
    `to` excluded it."""
    size = dt.timedelta(seconds=max(1, round(size.total_seconds())))
    stop = end or (newest + dt.timedelta(milliseconds=1) if newest else None)
    out: list[tuple[dt.datetime, dt.datetime | None]] = []
    a = start
    while stop is not None and a + size < stop:
        out.append((a, a + size))
        a = a + size
    out.append((a, end))
    return out


def merge_windows(wins: list[tuple[dt.datetime, dt.datetime | None]], n: int
                  ) -> list[tuple[dt.datetime, dt.datetime | None]]:
    """Adjacent windows joined into at most `n` walks of about as many windows each.

    Every walk ends with a partial page: two years of 7-day windows cost ~100 extra requests
    (5% of an unthrottled 200,000-event run). Within one run nothing needs the windows apart,
    and idle workers split the longest walk anyway (splitting.py), so uneven walks even out.
    """
    if n <= 0 or len(wins) <= n:
        return list(wins)
    size, extra = divmod(len(wins), n)
    out, i = [], 0
    for k in range(n):
        j = i + size + (1 if k < extra else 0)
        out.append((wins[i][0], wins[j - 1][1]))
        i = j
    return out


def lookback_start(mark: dt.datetime, lookback: dt.timedelta) -> dt.datetime:
    """Where a caught-up run's walk starts: `lookback` behind the mark, down to a 15-minute
    boundary (the re-read days then end exactly where the walk starts and are counted in
    whole buckets, reconcile.py)."""
    since = mark - lookback
    return since.replace(minute=since.minute // 15 * 15, second=0, microsecond=0)


def covers_open_walk(tail: tuple[dt.datetime, dt.datetime | None] | None,
                     wins: list[tuple[dt.datetime, dt.datetime | None]]) -> bool:
    """Whether the open-ended window `tail` (a chunked backfill's read of the lookback, see
    prefetch.py) holds every event of the windows `wins` of an open-ended walk (its rows
    before the walk's start are dropped by the walk's cursor)."""
    return (tail is not None and bool(wins) and wins[-1][1] is None
            and tail[0] <= wins[0][0])
