"""Cursor pagination of the API's list endpoints: pages, their checks and the loop guards."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError, MalformedResponseError, PaginationError

__all__ = ["MAX_EMPTY_PAGES", "Page", "paginate"]

logger = logging.getLogger("growthos_source")

MAX_EMPTY_PAGES = 50
# One GET: (path, query) -> (decoded object, body as received if orjson read it as it is).
Get = Callable[[str, Mapping[str, Any]], tuple[dict[str, Any], bytes | None]]


@dataclass(frozen=True)
class Page:
    """One page of a list endpoint: its rows, other top-level fields, its request id, and the
    response body as received when orjson read it as it is (decode.py; page_batch.py can
    parse it again outside the GIL)."""

    data: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    body: bytes | None = field(default=None, repr=False, compare=False)
    # The list goes on after this page (has_more with a next cursor): a caller that reads
    # only the first page can tell a one-page list without asking for a second.
    more: bool = field(default=False, compare=False)


def paginate(get: Get, path: str, params: Mapping[str, Any] | None = None, *,
             page_size: int = 100) -> Iterator[Page]:
    """Walk a cursor-paginated list endpoint page by page (see GrowthOSClient.paginate)."""
    if not 1 <= page_size <= 100:
        raise ConfigurationError(f"page_size must be 1..100 (the API maximum), got {page_size}")
    query = dict(params or {})
    query["limit"] = page_size
    used: set[str] = {query["cursor"]} if isinstance(query.get("cursor"), str) else set()
    empty_streak = 0
    while True:
        body, content = get(path, query)
        data = body.get("data")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise MalformedResponseError(
                f"GET {path} returned a page without a 'data' list of objects: check that "
                "base_url points at the GrowthOS API")
        raw_rid = body.get("request_id")
        rid = raw_rid if isinstance(raw_rid, str) else None
        cursor = body.get("next_cursor")
        has_more = body.get("has_more", bool(cursor))
        if not isinstance(has_more, bool) or not isinstance(cursor, (str, type(None))):
            raise MalformedResponseError(
                f"GET {path} returned a page whose has_more/next_cursor are not bool/string",
                request_id=rid)
        extra = {k: v for k, v in body.items()
                 if k not in ("data", "has_more", "next_cursor", "request_id")}
        yield Page(data=data, extra=extra, request_id=rid, body=content,
                   more=bool(has_more and cursor))
        if not has_more or not cursor:
            if has_more:
                logger.warning("GET %s: has_more is true but next_cursor is empty; stopping",
                               path)
            return
        if cursor in used:
            raise PaginationError(
                f"GET {path} returned a next_cursor already used in this walk (the API is "
                "looping): stopping; report the request_id to GrowthOS", request_id=rid)
        empty_streak = empty_streak + 1 if not data else 0
        if empty_streak > MAX_EMPTY_PAGES:
            raise PaginationError(
                f"GET {path} returned {empty_streak} empty pages in a row with has_more "
                "true: stopping; report the request_id to GrowthOS", request_id=rid)
        used.add(cursor)
        query["cursor"] = cursor
