"""Top-level list walks (the contacts list by created_at windows, several at once) and the
tables fed by them: records past the mark, plus deletions after a whole walk."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dlt

from .. import contact_plan, rejects, shapes
from ..endpoints import Endpoint
from ..http.fanout import DONE, fan_out
from ..incremental import Cursor, ts_key
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

# A windowed walk samples one `created_at` in this many for the quantiles that size the next
# run's windows (contact_plan.quantiles), kept as the texts read.
SAMPLE_EVERY = 10


# ---- top-level walks -------------------------------------------------------------------------
def read_parent(ctx: Context, ep: Endpoint) -> Iterator[Any]:
    """Every live record of a list, page by page, then a WalkComplete marker.

    The first page of the whole list is read first: a list of one page costs that request.
    A windowed list (/contacts) with more pages to follow may then be walked on in
    created_at windows, several at once (contact_plan.py)."""
    params: dict[str, Any] = {}
    whole = True
    if ep.windowed and ctx.end_date:
        # updated_at >= created_at, so nothing created after end_date can be in the window.
        params["created_before"] = ctx.end_date
        whole = False
    seen: set[str] = set()
    pages = 0
    oldest = newest = ""  # created_at values read
    samples: list[str] = []  # every SAMPLE_EVERY-th created_at read, for the quantiles

    def new(rows: list[Row]) -> list[Row]:
        nonlocal pages, oldest, newest
        # Adjacent windows overlap by a second (the filters' edges are not documented as
        # inclusive or exclusive), and windows read the first page again: a record read
        # twice is passed on once.
        rows = [r for r in rows if r.get("id") is None or str(r["id"]) not in seen]
        seen.update(str(r["id"]) for r in rows if r.get("id") is not None)
        if rows:
            pages += 1
            if ep.windowed:
                times = [t for r in rows if isinstance(t := r.get("created_at"), str)]
                if times:
                    oldest = min(times + [oldest] * bool(oldest), key=ts_key)
                    newest = max(times + [newest] * bool(newest), key=ts_key)
                    samples.extend(times[::SAMPLE_EVERY])
        return rows

    first = walk(ctx.client, ep.path, params, page_size=ctx.page_size)
    head = next(first, None)
    if head is None:
        yield WalkComplete(ep.table, seen, whole, pages)
        return
    if rows := new(head[0]):
        yield rows
    shape = table_marks(ep.table).get("windows") if ep.windowed else None
    walks: list[dict[str, Any]] = []
    if ep.windowed and head[1].more and ctx.walks() > 1:
        walks = contact_plan.plan(ctx.client, ep.path, params, head[1],
                                  page_size=ctx.page_size, walks=ctx.walks,
                                  known=contact_plan.known_from(shape))

    def job(p: dict[str, Any]) -> Callable[[], Iterator[tuple[list[Row], Any]]]:
        return lambda: walk(ctx.client, ep.path, p, page_size=ctx.page_size)

    # Split: the windows read the first page's rows again (a list's order is not documented,
    # so no window can start after them); not split: the first page's walk goes on.
    jobs = [(i, job(p)) for i, p in enumerate(walks)] or [(0, lambda: first)]
    for _, item in fan_out(jobs, ctx.walks(), places=ctx.client.places):
        if item is not DONE and (rows := new(item[0])):
            yield rows
    if ep.windowed and whole and oldest:
        # The stretch of creation history, the size and the spread over time this whole walk
        # saw: a later run sizes its windows from them, and a run that split spares the
        # filters' check.
        table_marks(ep.table)["windows"] = {
            "from": oldest, "newest": newest, "rows": len(seen),
            "split": bool(walks) or bool(isinstance(shape, dict) and shape.get("split")),
            "quantiles": contact_plan.quantiles(samples)}
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




def _held(table: str, field: str) -> dict[str, Any]:
    """`id -> cursor value` of the rows the warehouse holds for `table` ({} when unknown), as
    the warehouse returns it. `_moved` brings a value to `ts_key` form when it looks it up:
    this runs on dlt's thread, and converting every contact's value up front held the other
    tables' walks back at the start of a run."""
    return {rid: v[0] for rid, v in deletes.warehouse_values(table, (field,)).items()
            if v[0] is not None}


def _moved(cur: Cursor, row: Row, held: dict[str, Any]) -> bool:
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
    have = held.get(str(row.get(cur.id_field)))
    return have is None or ts_key(have) != v
