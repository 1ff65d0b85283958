"""Helpers shared by the endpoint handlers: paging, lookups, timestamps, parameters."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from ..errors import ApiError, bad_param, not_found
from ..pagination import page_body, parse_limit
from ..routing import Request, Response
from ..table import Key, Record, Table
from ..util import iso_ms, parse_ms


def list_table(req: Request, table: Table, scope: str, pred: Callable[[Record], bool] | None = None,
               *, lo: Key | None = None, hi: Key | None = None,
               extra: dict[str, Any] | None = None) -> Response:
    """One page of `table` for this request; `scope` ties cursors to this list (and parent)."""
    limit = parse_limit(req.params, req.world.dialect.default_limit)
    after = None
    if "cursor" in req.params:
        k = req.cursor_secret.decode(scope, req.params["cursor"])
        after = (str(k[0]), str(k[1]))
    blobs, last = table.page(after, limit, pred, lo=lo, hi=hi)
    nxt = None if last is None else req.cursor_secret.encode(scope, list(last))
    return Response(200, page_body(blobs, nxt, req.request_id, extra))


def list_records(req: Request, records: list[Record], scope: str, key_field: str,
                 extra: dict[str, Any] | None = None) -> Response:
    """Page a computed list (ascending by an integer `key_field`, e.g. leaderboard rank)."""
    from ..util import dumps

    limit = parse_limit(req.params, req.world.dialect.default_limit)
    start = 0
    if "cursor" in req.params:
        start = int(req.cursor_secret.decode(scope, req.params["cursor"]))
    first = bisect.bisect_right(records, start, key=lambda r: int(r[key_field]))
    page, more = records[first:first + limit], len(records) > first + limit
    nxt = req.cursor_secret.encode(scope, page[-1][key_field]) if more else None
    return Response(200, page_body([dumps(r) for r in page], nxt, req.request_id, extra))


def get(table: Table, rid: str, kind: str) -> Record:
    rec = table.get(rid)
    if rec is None:
        raise not_found(kind, rid)
    return rec


def child(tables: dict[str, Table], rid: str, kind: str) -> Table:
    t = tables.get(rid)
    if t is None:
        raise not_found(kind, rid)
    return t


def now(req: Request) -> str:
    """A fresh, strictly increasing write timestamp from the server clock."""
    return iso_ms(req.world.clock.tick())


def ok(rec: Record, status: int = 200) -> Response:
    return Response(status, dict(rec))


# The API's timestamp format has four-digit years: `iso_ms` writes years before 1000 unpadded
# (which would compare wrongly as strings) and cannot write years past 9999.
MIN_MS = parse_ms("1000-01-01T00:00:00Z")
MAX_MS = parse_ms("9999-12-31T23:59:59.999Z")


def time_param(req: Request, name: str) -> str | None:
    """An ISO 8601 query parameter normalized to the API's own timestamp format."""
    raw = req.params.get(name)
    if raw is None:
        return None
    try:
        ms = parse_ms(raw)
    except (ValueError, OverflowError):
        raise bad_param(name, "must be an ISO 8601 date-time, e.g. 2026-02-20T14:22:00Z") from None
    # A bound beyond the years 1000..9999 selects what a bound at that edge selects.
    return iso_ms(min(max(ms, MIN_MS), MAX_MS))


def apply_patch(table: Table, rec: Record, body: dict[str, Any], allowed: tuple[str, ...],
                at: str) -> Record:
    """Set the allowed fields present in `body`, bump `updated_at`, refresh the cached JSON."""
    for k in allowed:
        if k in body:
            rec[k] = body[k]
    rec["updated_at"] = at
    table.touch(rec[table.id_field])
    return rec


def conflict(msg: str) -> ApiError:
    return ApiError(409, "conflict", msg)


def segment_ref(req: Request, value: object, field: str) -> None:
    """A referenced segment id must exist (422 otherwise), as a real API would insist."""
    if value is not None and req.world.segments.get(str(value)) is None:
        raise ApiError(422, "validation_error", f"'{field}' names no existing segment",
                       [{"field": field, "reason": "unknown segment id"}])
