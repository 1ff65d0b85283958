"""How /contacts is walked: the first page of the whole list decides.

A split walk costs requests one walk does not: every window ends with a partial page, and the
windows need to know where creation history starts. A list that fits one page (a new project's
first sync) must cost that page alone, so the caller reads the first page of the unsplit list
first and goes on with that walk unless more pages follow, and enough of them to be worth
windows. Only then is the list split into `created_after`/`created_before` windows (the caller
drops the ids the first page gave), as many as the pages left need: from a total the envelope
may carry, else the size an earlier whole walk saw, else what the first page's `created_at`
values show (a page of a list in creation order, or newest first, covers a stretch of history
whose share of the whole tells how many pages follow). A page in no such order tells nothing:
the first sync then walks on from it (fewest requests), and later runs size their windows from
what it saw. The list's order is not documented, so it only ever sizes windows: exactness never
depends on it.

Before the first split, two one-row probes check that the API honours both filters (one that
ignores a filter would make every window read the whole list); a walk that split spares them
next time.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .http import GrowthOSClient, Page
from .incremental import iso_z, parse_ts, ts_key
from .timeline import _earliest

# Each window costs about one request more than its share of the list (its last, partial
# page): windows of at least this many pages keep that a small share.
PAGES_PER_WINDOW = 20
# Windows shrink as the walk goes on (guided self-scheduling): each is 1/(GUIDE x walks) of
# the pages still unplanned, so the first are large and the last PAGES_PER_WINDOW. Walks take
# windows in order, so the walks in flight near the end read small ones and finish about
# together; equal windows made the end as long as one whole window read by one walk.
GUIDE = 2
# At most this many windows per walk (a list of unknown length, e.g. one whose first page
# shows a single instant, would otherwise be cut into hundreds): the smallest grow instead.
WINDOWS_PER_WALK = 8
# Where a page of contacts may say how many the list holds (none is documented for /contacts;
# other lists add counts beside `data`, e.g. waitlist entries' `total_entries`).
TOTAL_FIELDS = ("total", "total_count", "total_contacts")
SECOND = dt.timedelta(seconds=1)
Params = dict[str, Any]
# A whole walk keeps this many quantiles of `created_at` (from a sample of the rows it read,
# readers/parents.py) for the next run's windows.
QUANTILES = 32


@dataclass(frozen=True)
class Known:
    """What an earlier whole walk saw: the oldest and newest `created_at`, the number of
    records, whether that run found both filters honoured, and quantiles of `created_at`
    (oldest to newest, evenly spaced in rows), where it kept them."""

    start: dt.datetime
    newest: dt.datetime
    rows: int
    checked: bool = False
    quantiles: tuple[dt.datetime, ...] = ()


def known_from(shape: Any) -> Known | None:
    """The `Known` kept in the table's marks (`{"from", "newest", "rows", "split",
    "quantiles"}`), if any; quantiles that do not parse are ignored."""
    if not isinstance(shape, Mapping):
        return None
    try:
        q = tuple(sorted(parse_ts(v) for v in shape.get("quantiles") or ()))
    except (TypeError, ValueError):
        q = ()
    try:
        start = parse_ts(shape["from"])
        return Known(start, parse_ts(shape["newest"]) if shape.get("newest") else start,
                     int(shape["rows"]), bool(shape.get("split")), q if len(q) > 2 else ())
    except (KeyError, TypeError, ValueError):
        return None


def quantiles(samples: list[str]) -> list[str]:
    """QUANTILES + 1 values of `samples` (`created_at` texts, a sample of those read), evenly
    spaced in rank from the oldest to the newest; [] for fewer than three samples."""
    if len(samples) < 3:
        return []
    ordered = sorted(samples, key=ts_key)
    k = min(QUANTILES, len(ordered) - 1)
    return [ordered[round(i * (len(ordered) - 1) / k)] for i in range(k + 1)]


def spread(lo: dt.datetime, end: dt.datetime, known: Known | None
           ) -> Callable[[float], dt.datetime]:
    """The instant below which a share `f` of the contacts were created: from the quantiles
    an earlier walk kept (linear between two), else assuming an even spread over [lo, end).
    Always within [lo, end]: windows never reach past the walk's own bounds."""
    q = known.quantiles if known is not None else ()

    def at(f: float) -> dt.datetime:
        f = min(max(f, 0.0), 1.0)
        if not q:
            return lo + (end - lo) * f
        x = f * (len(q) - 1)
        i = min(int(x), len(q) - 2)
        return min(max(q[i] + (q[i + 1] - q[i]) * (x - i), lo), end)
    return at


def created(row: Any) -> dt.datetime | None:
    try:
        return parse_ts(row["created_at"]) if row.get("created_at") is not None else None
    except (TypeError, ValueError, AttributeError, KeyError):
        return None


def announced_total(extra: Mapping[str, Any]) -> int | None:
    for name in TOTAL_FIELDS:
        v = extra.get(name)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return v
    return None


def _order(stamps: list[dt.datetime]) -> str | None:
    pairs = list(itertools.pairwise(stamps))
    if all(a <= b for a, b in pairs):
        return "asc"
    return "desc" if all(a >= b for a, b in pairs) else None


def pages_left(stamps: list[dt.datetime], rows: int, page_size: int, *, total: int | None,
               known: Known | None, start: dt.datetime | None, end: dt.datetime) -> int | None:
    """Pages of the list after its first page (which held `rows` rows, whose `created_at`
    values in the order served are `stamps`), or None when nothing tells. `known` counts
    when it saw more than that page (else the list grew since)."""
    if total is not None:
        return math.ceil(max(0, total - rows) / max(1, page_size))
    if known is not None and known.rows > rows:
        return max(1, math.ceil(known.rows / max(1, page_size)) - 1)
    order = _order(stamps) if len(stamps) > 1 else None
    if order == "asc":  # creation order: the rest is after the page
        covered, rest = stamps[-1] - stamps[0], end - stamps[-1]
    elif order == "desc" and start is not None:  # newest first: the rest is before it
        covered, rest = stamps[0] - stamps[-1], stamps[-1] - start
    else:
        return None
    if rest <= dt.timedelta(0):
        return 1
    if covered <= dt.timedelta(0):  # a page within one instant: a dense list
        return 10**9
    return math.ceil(rest / covered)


def window_pages(left: int, walks: int) -> list[int]:
    """Pages of each window for `left` pages after the first with `walks` walks in flight,
    in the order they are walked: a share of what is left (see GUIDE), never below
    PAGES_PER_WINDOW (a remainder below it joins the first window). [] or one window: not
    worth splitting."""
    walks = max(1, walks)
    smallest = PAGES_PER_WINDOW
    while True:
        sizes: list[int] = []
        rest = left
        while rest > 0:
            size = min(rest, max(smallest, math.ceil(rest / (GUIDE * walks))))
            sizes.append(size)
            rest -= size
        if len(sizes) > 1 and sizes[-1] < smallest:
            sizes[0] += sizes.pop()
        if len(sizes) <= walks * WINDOWS_PER_WALK:
            return sizes
        smallest *= 2


def windows(base: Params, lo: dt.datetime, end: dt.datetime, pages: list[int],
            at: Callable[[float], dt.datetime] | None = None) -> list[Params]:
    """Query parameters of one window per entry of `pages` (the largest first) over
    [lo, end), the smallest the oldest, each holding its share of the contacts as `at` (see
    `spread`; default: spread evenly over time) places them; returned largest first as
    planned. Contacts bunched at one instant (an import) make several edges one: those
    windows merge, and the merged one is walked as early as its pages say. Together they
    cover every contact with a `created_at`: the oldest has no lower bound, the newest no
    upper one beyond `base`'s, so inexact shares lose nothing. Whether the filters' edges are
    inclusive is not documented: each window starts a second before the previous one ends,
    and the caller drops the ids it already has. [] when there is nothing to split."""
    total = sum(pages)
    if end <= lo or len(pages) < 2 or total <= 0:
        return []
    at = at or spread(lo, end, None)
    oldest_first = pages[::-1]
    edges: list[dt.datetime] = []  # the upper edge of each window but the newest
    held: list[int] = []  # the pages planned in each window, the newest last
    done = carry = 0
    for size in oldest_first[:-1]:
        done += size
        edge = at(done / total).replace(microsecond=0)
        if edges and edge <= edges[-1]:  # an empty window: its pages lie in the next one
            carry += size
            continue
        edges.append(edge)
        held.append(size + carry)
        carry = 0
    if not edges:
        return []
    held.append(oldest_first[-1] + carry)
    out = [{**base, "created_before": iso_z(edges[0])}]
    for a, b in itertools.pairwise(edges):
        out.append({**base, "created_after": iso_z(a - SECOND), "created_before": iso_z(b)})
    out.append({**base, "created_after": iso_z(edges[-1] - SECOND)})
    order = sorted(range(len(out)), key=lambda k: (-held[k], -k))  # largest, then newest
    return [out[k] for k in order]


def _one(client: GrowthOSClient, path: str, base: Params, name: str, at: dt.datetime
         ) -> tuple[bool, dt.datetime | None]:
    """(any contact answered, its created_at) for `name`=`at` (a one-row request)."""
    body = client.request("GET", path, params={**base, name: iso_z(at), "limit": 1})
    data = body.get("data") or []
    return (True, created(data[0])) if data else (False, None)


def honours_filters(client: GrowthOSClient, path: str, base: Params, head: dt.datetime,
                    oldest: dt.datetime) -> tuple[bool, bool]:
    """(both filters honoured, contacts exist created before `oldest`), in two one-row
    requests. `head` is the `created_at` of the list's first row, `oldest` the oldest of its
    first page. An API that ignores a filter answers the list's first row, which the bounds
    here exclude: a second past `head`, a second before `oldest`."""
    after = head + SECOND
    found, at = _one(client, path, base, "created_after", after)
    if found and (at is None or at < after):
        return False, False
    before = oldest - SECOND
    found, at = _one(client, path, base, "created_before", before)
    return (False, False) if found and (at is None or at > before) else (True, found)


def plan(client: GrowthOSClient, path: str, base: Params, page: Page, *, page_size: int,
         walks: Callable[[], int], known: Known | None = None) -> list[Params]:
    """The windows to walk the rest of the list in, after its first `page` (read with
    `base`); [] to go on with that page's walk. `walks()`: the walks the rate allows now.

    Where the windows start: where an earlier walk saw history start, else the first page's
    oldest row (in creation order the start itself; in no order, the oldest of a sample of
    the whole history), else (newest first) searched for as for the event stream."""
    head = created(page.data[0]) if page.data else None
    stamps = [t for t in map(created, page.data) if t is not None]
    if not page.more or head is None:
        return []
    end = parse_ts(base["created_before"]) if base.get("created_before") else \
        dt.datetime.now(dt.timezone.utc)
    if known is not None and known.rows > len(page.data):  # else it saw a smaller list
        end = min(end, known.newest + SECOND)
    order = _order(stamps)
    start = known.start if known is not None else None if order == "desc" else min(stamps)
    left = pages_left(stamps, len(page.data), page_size, total=announced_total(page.extra),
                      known=known, start=start, end=end)
    if left is None or len(window_pages(left, walks())) < 2:
        return []  # too few pages follow to be worth windows (or nothing tells): one walk
    if known is None or not known.checked:
        ok, older = honours_filters(client, path, base, head, min(stamps))
        if not ok:
            return []
        if start is None and not older:
            start = min(stamps)
    if start is None:  # newest first, a total announced: where history starts is searched
        lo, found = _earliest(lambda t: _one(client, path, base, "created_before", t)[0],
                              min(stamps) - SECOND, walks(), precision=1 / (2 * max(2, walks())))
        if not found:
            return []
        start = lo
    seen = known if known is not None and known.rows > len(page.data) else None
    return windows(base, start, end, window_pages(left, walks()), spread(start, end, seen))
