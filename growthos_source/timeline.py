"""Time windows for the event stream: find where history starts, split a range into windows.

The event stream is documented as newest first with `from` (inclusive) / `to` (exclusive)
filters, so the earliest event can be found with a few one-row requests instead of a walk.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

from .client import GrowthOSClient
from .incremental import iso_z, parse_ts

DAY = dt.timedelta(days=1)


def _newest_before(client: GrowthOSClient, path: str, to: dt.datetime | None) -> dt.datetime | None:
    params: dict[str, Any] = {"limit": 1}
    if to is not None:
        params["to"] = iso_z(to)
    body = client.request("GET", path, params=params)
    data = body.get("data") or []
    return parse_ts(data[0]["timestamp"]) if data else None


def newest(client: GrowthOSClient, path: str) -> dt.datetime | None:
    """Timestamp of the newest event (one one-row request), or None without events."""
    return _newest_before(client, path, None)


def history_bounds(client: GrowthOSClient, path: str) -> tuple[dt.datetime, dt.datetime] | None:
    """(earliest event's day start, newest event time), or None when there are no events.

    Exponential then binary search on `to` with one-row pages: ~2*log2(days) requests.
    """
    newest = _newest_before(client, path, None)
    if newest is None:
        return None
    lo, _ = _earliest(lambda t: _newest_before(client, path, t) is not None, newest)
    start = lo.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, newest


def _earliest(exists_before: Callable[[dt.datetime], bool],
              end: dt.datetime) -> tuple[dt.datetime, bool]:
    """(lo, found): within a day of where records start, by exponential then binary search on
    "is there a record before t" (~2*log2(days) probes). found is False when records reach
    back over 50 years; lo is then just the oldest instant probed."""
    step = DAY
    while exists_before(end - step):
        step *= 2
        if step > dt.timedelta(days=365 * 50):
            return end - step, False
    lo, hi = end - step, (end - step / 2 if step > DAY else end)
    while hi - lo > DAY:  # no record before lo; some before hi (or hi = end)
        mid = lo + (hi - lo) / 2
        if exists_before(mid):
            hi = mid
        else:
            lo = mid
    return lo, True


def windows(start: dt.datetime, end: dt.datetime | None, size: dt.timedelta,
            newest: dt.datetime | None = None) -> list[tuple[dt.datetime, dt.datetime | None]]:
    """Split [start, end) into windows of `size`, newest last. With no `end`, the last window is
    open-ended (it also catches events that arrive while the sync runs)."""
    stop = end or (newest + dt.timedelta(milliseconds=1) if newest else None)
    out: list[tuple[dt.datetime, dt.datetime | None]] = []
    a = start
    while stop is not None and a + size < stop:
        out.append((a, a + size))
        a = a + size
    out.append((a, end))
    return out


def _any_created_before(client: GrowthOSClient, path: str, base: dict[str, Any],
                        before: dt.datetime) -> bool:
    body = client.request("GET", path, params={**base, "created_before": iso_z(before),
                                               "limit": 1})
    return bool(body.get("data"))


def contact_windows(client: GrowthOSClient, path: str, base: dict[str, Any],
                    n: int) -> list[dict[str, Any]]:
    """Query parameters of up to `n` `created_after`/`created_before` windows that together
    cover every contact with a `created_at`, to walk concurrently; `[base]` when there is
    nothing to split.

    Where creation history starts is found as for the event stream, by asking whether any
    contact was created before an instant (~2*log2(days) one-row requests). The first window has
    no lower bound and the last no upper one (beyond `base`'s), so an inexact search loses
    nothing. Whether the filters' edges are inclusive is not documented: each window starts a
    second before the previous one ends, and the caller drops the ids it already has.
    """
    end = parse_ts(base["created_before"]) if base.get("created_before") else \
        dt.datetime.now(dt.timezone.utc)
    if n < 2 or not _any_created_before(client, path, base, end):
        return [base]
    lo, found = _earliest(lambda t: _any_created_before(client, path, base, t), end)
    if not found:
        return [base]
    edges = sorted({(lo + (end - lo) * i / n).replace(microsecond=0) for i in range(1, n)})
    if not edges:
        return [base]
    out = [{**base, "created_before": iso_z(edges[0])}]
    for a, b in itertools.pairwise(edges):
        out.append({**base, "created_after": iso_z(a - dt.timedelta(seconds=1)),
                    "created_before": iso_z(b)})
    out.append({**base, "created_after": iso_z(edges[-1] - dt.timedelta(seconds=1))})
    return out
