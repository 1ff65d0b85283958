"""Top-level list walks (the contacts list by created_at windows, several at once) and the
tables fed by them: records past the mark, plus deletions after a whole walk."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import dlt

from .. import rejects, shapes
from ..endpoints import Endpoint
from ..http.fanout import DONE, fan_out
from ..incremental import Cursor, iso_z, parse_ts, ts_key
from ..timeline import contact_windows
from ..walks import walk
from ..warehouse import deletes
from .context import (
    Context,
    Row,
    Tally,
    WalkComplete,
    _checked,
    _id_field,
    fresh,
    logger,
    table_marks,
)

# /contacts is walked in created_at windows, this many per worker: a window's walk is one cursor
# chain (~18 pages/s at 50 ms), and many small windows keep the end of the walk short.
CONTACT_WINDOWS_PER_WORKER = 4
# Once an earlier walk told the list's size, windows of about this many pages: each window
# costs about one request more than its share of the list (its last, partial page), so many
# small windows cost up to a third more requests on a nightly run for little time.
PAGES_PER_WINDOW = 20


def _window_plan(ctx: Context, shape: Any
                 ) -> tuple[Callable[[], int], tuple[dt.datetime, dt.datetime] | None]:
    """How many created_at windows to walk /contacts in (asked once the first request has
    told the rate and latency), and the stretch of creation history an earlier walk saw
    (start, newest `created_at`), which spares the search for it."""
    def most() -> int:
        return ctx.walks() * CONTACT_WINDOWS_PER_WORKER
    if not isinstance(shape, dict):
        return most, None
    try:
        rows = int(shape["rows"])
        known = (parse_ts(shape["from"]), parse_ts(shape["newest"] or shape["from"]))
    except (KeyError, TypeError, ValueError):
        return most, None
    pages = -(-rows // max(1, ctx.page_size))
    return lambda: max(2, min(most(), -(-pages // PAGES_PER_WINDOW))), known


# ---- top-level walks -------------------------------------------------------------------------
def read_parent(ctx: Context, ep: Endpoint) -> Iterator[Any]:
    """Every live record of a list, page by page, then a WalkComplete marker."""
    params: dict[str, Any] = {}
    whole = True
    if ep.windowed and ctx.end_date:
        # updated_at >= created_at, so nothing created after end_date can be in the window.
        params["created_before"] = ctx.end_date
        whole = False
    seen: set[str] = set()
    pages = 0
    walks = [params]
    start: dt.datetime | None = None
    shape = table_marks(ep.table).get("windows") if ep.windowed else None
    if ep.windowed and ctx.walks() > 1:
        # The size is asked again after the first probe, which tells the rate and latency.
        count, known = _window_plan(ctx, shape)
        walks, start = contact_windows(ctx.client, ep.path, params, count, probes=ctx.walks,
                                       known=known)

    def job(p: dict[str, Any]) -> Callable[[], Iterator[tuple[list[Row], Any]]]:
        return lambda: walk(ctx.client, ep.path, p, page_size=ctx.page_size)

    newest = ""
    for _, item in fan_out([(i, job(p)) for i, p in enumerate(walks)], ctx.walks(),
                           places=ctx.client.places):
        if item is DONE:
            continue
        # Adjacent windows overlap by a second (the filters' edges are not documented as
        # inclusive or exclusive): a record read twice is passed on once.
        rows = [r for r in item[0] if r.get("id") is None or str(r["id"]) not in seen]
        seen.update(str(r["id"]) for r in rows if r.get("id") is not None)
        if rows:
            pages += 1
            if ep.windowed:
                newest = max([newest, *(str(r["created_at"]) for r in rows
                                        if isinstance(r.get("created_at"), str))])
            yield rows
    if ep.windowed and whole and (start is not None or shape):
        first = iso_z(start) if start is not None else str((shape or {}).get("from"))
        table_marks(ep.table)["windows"] = {"from": first, "newest": newest or None,
                                             "rows": len(seen)}
    yield WalkComplete(ep.table, seen, whole, pages,
                       requires="created_at" if len(walks) > 1 else None)


def read_list(ctx: Context, ep: Endpoint) -> Iterator[Any]:
    for rows, _ in walk(ctx.client, ep.path, {}, id_field=_id_field(ep), page_size=ctx.page_size):
        yield from _checked(ctx, ep, rows)




def passthrough(ctx: Context, ep: Endpoint) -> Callable[[Any], Iterator[Any]]:
    """The table of a parent walk: records past the cursor, plus deletions after a whole walk."""
    tally = Tally()
    run: dict[str, Any] = {}

    def cursor() -> Cursor | None:
        if ep.cursor and "cursor" not in run:
            run["cursor"] = Cursor(table_marks(ep.table), "all", ep.cursor, ctx.start_date,
                                   ctx.end_date)
        return run.get("cursor")

    def finish() -> Iterator[Any]:
        cur, marker = cursor(), run["marker"]
        if cur is not None:
            cur.commit()
        if ep.deletes and marker.whole_list and not ctx.start_date:
            vanished = (deletes.warehouse_ids(ep.table, marker.requires) or set()) - marker.seen
            if vanished:
                logger.info("%s: %d records vanished from the API", ep.table, len(vanished))
                yield dlt.mark.with_hints(
                    deletes.deletion_rows(ep, vanished, ctx.run_started, ctx.deletes),
                    deletes.log_hints(), create_table_variant=True)

    def step(items: Any) -> Iterator[Any]:
        fresh(ctx, ep, run, tally)
        if isinstance(items, WalkComplete):
            run["marker"] = items
            if tally.marker(items):
                yield from finish()
            return
        cur = cursor()
        rows, bad = rejects.check(ep, shapes.conform(ep, items), ctx.run_started)
        if cur is not None:
            if "held" not in run:
                run["held"] = _held(ep.table, cur.field)
            rows = [r for r in rows if cur.accept(r) or _moved(cur, r, run["held"])]
        last = tally.page()
        if rows:
            yield rows
        if bad:
            yield rejects.hinted(bad)
        if last:
            yield from finish()

    return step




def _held(table: str, field: str) -> dict[str, str]:
    """`id -> cursor value` of the rows the warehouse holds for `table` ({} when unknown)."""
    return {rid: ts_key(v[0]) for rid, v in deletes.warehouse_values(table, (field,)).items()
            if v[0] is not None}


def _moved(cur: Cursor, row: Row, held: dict[str, str]) -> bool:
    """A record behind the high-water mark whose value differs from the warehouse's copy.

    The mark is the newest value one walk saw, but the walk order is not by that value: a record
    the walk had already passed can change while the walk goes on and get a value below the
    newest one read later. Comparing with what the warehouse holds catches it on the next run.
    """
    if not held:  # warehouse unknown (first run, or a destination we cannot query)
        return False
    v = ts_key(row[cur.field])
    if (cur.start is not None and v < cur.start) or (cur.end is not None and v >= cur.end):
        return False
    return held.get(str(row.get(cur.id_field))) != v
