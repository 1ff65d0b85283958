"""Page walks that survive expired cursors and looping pagination.

Cursors are opaque and may expire mid-walk (400 `cursor_expired`), and a faulty API may hand
back a `next_cursor` it already gave (the client's loop guard stops that walk with a
PaginationError). Either way the walk restarts from a
point it can express without the cursor: the event stream from its time window (its order and
`from`/`to` filters are documented), every other list from its beginning, skipping the records
it already produced. Restarts that made no progress (no new record since the previous expiry)
are capped, so a server that expires every cursor ends the run with a clear error instead of
looping forever, while a long walk that meets an occasional expiry keeps going.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

from .client import GrowthOSClient, Page
from .errors import CursorExpiredError, PaginationError
from .incremental import iso_z, parse_ts
from .splitting import Window

logger = logging.getLogger("growthos_source")

MAX_RESTARTS = 8
_ONE_MS = dt.timedelta(milliseconds=1)
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
         id_field: str = "id", page_size: int = 100) -> Iterator[tuple[list[Row], Page]]:
    """Yield (new rows, page) for every page of a list, restarting on an expired cursor."""
    seen: set[Any] = set()
    stalled, kept = 0, -1
    while True:
        try:
            for page in client.paginate(path, params, page_size=page_size):
                rows = [r for r in page.data if r.get(id_field) not in seen]
                seen.update(r.get(id_field) for r in rows)
                yield rows, page
            return
        except (CursorExpiredError, PaginationError) as exc:
            stalled, kept = (stalled + 1 if len(seen) == kept else 1), len(seen)
            if stalled > MAX_RESTARTS:
                raise PaginationError(
                    f"GET {path}: the walk restarted {stalled} times in a row without progress "
                    f"({exc}); retry later or lower the concurrency") from None
            logger.warning("GET %s: %s; restarting the walk (%d rows kept)", path, exc,
                           len(seen))


def _oldest(rows: list[Row], stamps: list[Any], oldest: str | None,
            at_oldest: set[Any]) -> tuple[str | None, set[Any]]:
    """The oldest timestamp read so far (the stream is newest first: the last row's) and the
    ids read at it, after `rows` (whose timestamps are `stamps`)."""
    if not rows:
        return oldest, at_oldest
    last = stamps[-1]
    i = len(stamps) - 1
    while i > 0 and stamps[i - 1] == last:
        i -= 1
    tail = {r.get("id") for r in rows[i:]}
    if i == 0 and last == oldest:
        return oldest, at_oldest | tail
    return last, tail


def walk_events(client: GrowthOSClient, path: str, params: dict[str, Any], *,
                page_size: int = 100, window: Window | None = None) -> Iterator[PageRows]:
    """Walk the event stream (newest first) over params' `from`/`to` window.

    On an expired cursor the walk resumes with `to` just after the oldest timestamp read so far
    (`to` is exclusive), dropping the already-read events at that instant. With a `window`
    (splitting.py) pages are clipped to its floor, which another walk may raise meanwhile, and
    the walk stops once it has passed it.
    """
    query = dict(params)
    stalled, kept, read = 0, -1, 0
    oldest: str | None = None
    at_oldest: set[Any] = set()
    while True:
        try:
            for page in client.paginate(path, query, page_size=page_size):
                rows = page.data
                stamps = [r.get("timestamp") for r in rows]
                if oldest is not None and oldest in stamps:
                    rows = [r for r, ts in zip(rows, stamps)
                            if not (ts == oldest and r.get("id") in at_oldest)]
                    stamps = [r.get("timestamp") for r in rows]
                oldest, at_oldest = _oldest(rows, stamps, oldest, at_oldest)
                read += len(rows)
                if window is None:
                    yield PageRows(rows, page)
                    continue
                rows, passed = window.clip(rows)
                yield PageRows(rows, page)
                if passed:
                    return
            return
        except (CursorExpiredError, PaginationError) as exc:
            stalled, kept = (stalled + 1 if read == kept else 1), read
            if stalled > MAX_RESTARTS:
                raise PaginationError(
                    f"GET {path}: the window's walk restarted {stalled} times in a row without "
                    f"progress ({exc}); retry later or use smaller windows") from None
            if oldest is not None:
                query["to"] = iso_z(parse_ts(oldest) + _ONE_MS)
            logger.warning("GET %s: %s; resuming the window before %s", path, exc,
                           query.get("to"))

