"""Page walks that survive expired cursors, looping pagination and APIs that ignore filters.

Cursors are opaque and may expire mid-walk (400 `cursor_expired`), and a faulty API may hand
back a `next_cursor` it already gave (the client's loop guard stops that walk with a
PaginationError) or keep saying `has_more` with fresh cursors while serving records the walk
already read (the walks here stop that after MAX_STALE_PAGES such pages in a row). Either way the
walk restarts from a point it can express without the cursor: the event stream from its time
window (its order and `from`/`to` filters are documented), every other list from its beginning,
skipping the records it already produced. Restarts that made no progress (no new record since the
previous restart) are capped, so a server that expires every cursor or never ends a list ends
the run with a clear error instead of looping forever, while a long walk that meets an
occasional expiry keeps going.

An event walk never trusts the server with its edges: it keeps only rows in [from, to) and, the
stream being newest first, only rows older than the oldest it has read (or at that instant and
not yet read). An API that ignores `from`/`to`, or serves a page again, cannot make it yield an
event twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from typing import Any

from .errors import CursorExpiredError, PaginationError
from .http import GrowthOSClient, Page
from .incremental import iso_z, parse_ts, ts_key, uniform_ms
from .splitting import Window

logger = logging.getLogger("growthos_source")

MAX_RESTARTS = 8
# The documented largest `limit` of a list request.
MAX_PAGE_SIZE = 100
# Pages in a row that bring only records this pass of the walk already read: a correct keyset
# API never serves one (a record moving between pages can repeat, a whole page cannot).
MAX_STALE_PAGES = 3
Row = dict[str, Any]


class PageRows(list[Row]):
    """The rows a walk yields from one page, with the page's response body and all its rows
    (the rows are some of `data`, the same objects, in order): arrowize.py parses the body
    again in C++ instead of typing the dicts under the GIL."""

    def __init__(self, rows: list[Row], page: Page) -> None:
        super().__init__(rows)
        self.body = page.body
        self.data = page.data


def walk(client: GrowthOSClient, path: str, params: dict[str, Any] | None = None, *,
         id_field: str = "id", page_size: int = 100,
         conform: Callable[[list[Row]], list[Row]] | None = None,
         ) -> Iterator[tuple[list[Row], Page]]:
    """Yield (new rows, page) for every page of a list, restarting on an expired cursor or a
    looping walk. `conform` brings records of another shape to the table's (shapes.py) before
    their `id_field` is read. A record without an id is always passed on (the rejects check
    reports it)."""
    seen: set[Any] = set()
    stalled, kept = 0, -1
    this_pass: set[Any] | None = None  # ids read since the last restart (None: first pass)
    while True:
        stale = 0
        try:
            for page in client.paginate(path, params, page_size=page_size):
                data = conform(page.data) if conform is not None else page.data
                ids = [r.get(id_field) for r in data]
                rows = [r for r, i in zip(data, ids) if i is None or i not in seen]
                seen.update(i for i in ids if i is not None)
                fresh = bool(rows) if this_pass is None else not this_pass.issuperset(ids)
                if this_pass is not None:
                    this_pass.update(ids)
                stale = 0 if fresh or not page.data else stale + 1
                if stale > MAX_STALE_PAGES:
                    raise PaginationError(
                        f"GET {path} returned {stale} pages in a row with has_more true and only "
                        "records already read (the API is looping)", request_id=page.request_id)
                yield rows, page
            return
        except (CursorExpiredError, PaginationError) as exc:
            stalled, kept = (stalled + 1 if len(seen) == kept else 1), len(seen)
            if stalled > MAX_RESTARTS:
                raise PaginationError(
                    f"GET {path}: the walk restarted {stalled} times in a row without progress "
                    f"({exc}); {_fix(exc)}") from None
            logger.warning("GET %s: %s; restarting the walk (%d rows kept)", path, exc,
                           len(seen))
            this_pass = set()


def _fix(exc: Exception) -> str:
    if isinstance(exc, CursorExpiredError):
        return "retry later or lower the concurrency"
    return "the API keeps looping: retry later, and report it to GrowthOS if it persists"


def _oldest(keys: list[str], ids: list[Any], oldest: str | None,
            at_oldest: set[Any]) -> tuple[str | None, set[Any]]:
    """The oldest timestamp read so far (the stream is newest first: the last row's) and the
    ids read at it, after rows whose timestamp keys (`ts_key`) and ids are `keys`, `ids`."""
    if not keys:
        return oldest, at_oldest
    last = keys[-1]
    i = len(keys) - 1
    while i > 0 and keys[i - 1] == last:
        i -= 1
    tail = set(ids[i:])
    if i == 0 and last == oldest:
        return oldest, at_oldest | tail
    return last, tail


def _stamp(row: Row) -> str | None:
    try:
        return ts_key(row["timestamp"])
    except (KeyError, TypeError, ValueError):
        return None


def resume_before(oldest: str) -> str:
    """The exclusive `to` that resumes a newest-first walk whose oldest row read has the
    timestamp `oldest` (as sent): just after it, at the value's own precision. An API sending
    whole seconds may hold events anywhere within that second, so `to` is the next second, not
    the next millisecond (the caller drops the ids it already read there)."""
    d = parse_ts(oldest)
    if "." not in str(oldest):
        return iso_z(d.replace(microsecond=0) + dt.timedelta(seconds=1))
    return iso_z(d.replace(microsecond=d.microsecond // 1000 * 1000)
                 + dt.timedelta(milliseconds=1))


class _Edges:
    """What one event walk may still yield: rows in [lo, hi) older than the oldest read so far
    (or at that instant and not read yet)."""

    def __init__(self, lo: str | None, hi: str | None) -> None:
        self.lo, self.hi = lo, hi
        self.oldest: str | None = None  # ts_key of the oldest row read
        self.oldest_sent: str | None = None  # the same timestamp as the API sent it
        self.at_oldest: set[Any] = set()
        self.repeats = 0

    def keep(self, data: list[Row]) -> tuple[list[Row], bool]:
        """The rows of a page to yield, and True if the page reached below `lo` (the walk is
        done: the API ignored `from`). `repeats` counts the rows dropped as read already."""
        self.repeats = 0
        stamps: list[Any] = [r.get("timestamp") for r in data]
        if uniform_ms(stamps):  # nearly every page: decided by its newest and oldest row
            top, bottom = max(stamps)[:23] + "000Z", min(stamps)[:23] + "000Z"
            if ((self.hi is None or top < self.hi) and (self.lo is None or bottom >= self.lo)
                    and (self.oldest is None or top < self.oldest)):
                self._advance(data, [s[:23] + "000Z" for s in stamps])
                return data, False
        rows: list[Row] = []
        keys: list[str] = []
        passed = False
        for r in data:
            k = _stamp(r)
            if k is None:
                rows.append(r)  # the rejects check reports it; it does not move the walk
            elif self.hi is not None and k >= self.hi:
                continue  # above the window: an API that ignores `to`
            elif self.oldest is not None and (
                    k > self.oldest or (k == self.oldest and r.get("id") in self.at_oldest)):
                self.repeats += 1  # read already: a page served again
            elif self.lo is not None and k < self.lo:
                passed = True  # below the window: an API that ignores `from`
            else:
                rows.append(r)
                keys.append(k)
        self._advance([r for r in rows if _stamp(r) is not None], keys)
        return rows, passed

    def _advance(self, dated: list[Row], keys: list[str]) -> None:
        before = self.oldest
        self.oldest, self.at_oldest = _oldest(keys, [r.get("id") for r in dated], self.oldest,
                                              self.at_oldest)
        if self.oldest != before:
            self.oldest_sent = str(dated[-1]["timestamp"])


def walk_events(client: GrowthOSClient, path: str, params: dict[str, Any], *,
                page_size: int = 100, window: Window | None = None) -> Iterator[PageRows]:
    """Walk the event stream (newest first) over params' `from`/`to` window.

    On an expired cursor the walk resumes with `to` just after the oldest timestamp read so far
    (`to` is exclusive), dropping the already-read events at that instant. At whole seconds
    many events share that instant, and the resumed walk's first page starts with all of them:
    when they fill a page, pages grow by their number (up to the largest `limit`), so the first
    page still brings new events and a walk whose cursors keep expiring makes progress. With a `window`
    (splitting.py) pages are clipped to its floor, which another walk may raise meanwhile, and
    the walk stops once it has passed it. Rows outside [from, to), and rows newer than the
    oldest already read (a page served again), are dropped whatever the server sent.
    """
    query = dict(params)
    edges = _Edges(ts_key(params["from"]) if params.get("from") else None,
                   ts_key(params["to"]) if params.get("to") else None)
    stalled, kept, read = 0, -1, 0
    size = page_size
    while True:
        stale = 0
        try:
            for page in client.paginate(path, query, page_size=size):
                rows, passed = edges.keep(page.data)
                read += len(rows)
                stale = stale + 1 if edges.repeats and not rows else 0
                if stale > MAX_STALE_PAGES:
                    raise PaginationError(
                        f"GET {path} returned {stale} pages in a row with has_more true and only "
                        "events already read (the API is looping)", request_id=page.request_id)
                if window is not None:
                    rows, done = window.clip(rows)
                    passed = passed or done
                yield PageRows(rows, page)
                if passed:
                    return
            return
        except (CursorExpiredError, PaginationError) as exc:
            stalled, kept = (stalled + 1 if read == kept else 1), read
            if stalled > MAX_RESTARTS:
                fix = "retry later or use smaller windows" if isinstance(
                    exc, CursorExpiredError) else _fix(exc)
                raise PaginationError(
                    f"GET {path}: the window's walk restarted {stalled} times in a row without "
                    f"progress ({exc}); {fix}") from None
            if edges.oldest_sent is not None:
                query["to"] = resume_before(edges.oldest_sent)
                if len(edges.at_oldest) >= size:
                    size = max(size, min(MAX_PAGE_SIZE, page_size + len(edges.at_oldest)))
            logger.warning("GET %s: %s; resuming the window before %s", path, exc,
                           query.get("to"))
