"""Lists and objects per parent record (survey responses, campaign stats, profiles), the
parents' walks run concurrently."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from .. import rejects, shapes
from ..endpoints import Endpoint
from ..errors import NotFoundError
from ..http.fanout import DONE, fan_out
from ..incremental import Cursor
from ..walks import walk
from ..warehouse import deletes
from .context import (
    Context,
    Row,
    Tally,
    WalkComplete,
    _checked,
    _child_path,
    _id_field,
    fresh,
    table_marks,
)
from .parents import _held, _moved
from .pool import ON_POOL
from .tables import BATCH_ROWS, ArrowRows


def child(ctx: Context, ep: Endpoint) -> Callable[[Any], Iterator[Any]]:
    """A list per parent record, the parents' walks run concurrently."""
    known: dict[str, Any] = {}

    def step(items: Any) -> Iterator[Any]:
        fresh(ctx, ep, known)
        if isinstance(items, WalkComplete):
            return
        parents = items if isinstance(items, list) else [items]
        cursors = table_marks(ep.table)
        if ep.refresh_on:
            if "values" not in known:
                known["values"] = deletes.warehouse_values(ep.table, ep.refresh_on)
            yield ON_POOL  # the walks below need no more of dlt's thread
        marks: dict[str, Cursor] = {}

        def job(parent: Row) -> Callable[[], Iterator[list[Row]]]:
            value = str(parent[ep.parent_field])
            params = {ep.parent_param: value} if ep.parent_param else {}
            path = ep.path if ep.parent_param else _child_path(ep, value)

            def run() -> Iterator[list[Row]]:
                for rows, page in walk(ctx.client, path, params, id_field=_id_field(ep),
                                       page_size=ctx.page_size,
                                       conform=lambda rs: shapes.conform(ep, rs)):
                    yield rows
            return run

        jobs, sizes = [], dict[Hashable, float]()
        for parent in parents:
            if parent.get("id") is None or parent.get(ep.parent_field) is None:
                continue  # rejected with its own table
            pid = str(parent["id"])
            if ep.cursor:
                marks[pid] = Cursor(cursors, pid, ep.cursor, ctx.start_date, ctx.end_date)
            jobs.append((pid, job(parent)))
            if (pages := _pages(parent, ep.size_field, ctx.page_size)) is not None:
                sizes[pid] = pages
        if ep.arrow and "arrow" not in known:
            known["arrow"] = ArrowRows(ep)
        held: list[Row] = []  # rows of an arrow table to be
        for job_key, rows in fan_out(jobs, ctx.walks(), places=ctx.client.places,
                                     sizes=sizes):
            key = str(job_key)
            if rows is DONE:
                if key in marks:
                    marks[key].commit()
                continue
            if ep.parent_key:
                for r in rows:
                    r[ep.parent_key] = key
            # A page without the incremental field at all (ep.mark_optional): no mark to go by.
            unmarked = bool(ep.mark_optional and ep.cursor and rows
                            and not any(ep.cursor in r for r in rows))
            # The arrow path renames keys and keeps values exact while it builds columns.
            rows, bad = rejects.check(ep, rows, ctx.run_started, "" if unmarked else None,
                                      rename_keys=not ep.arrow)
            if bad:
                yield rejects.hinted(bad)
            cur = marks.get(key)
            values = known.get("values", {})
            if unmarked:
                rows = [r for r in rows if _changed(r, values, ep.refresh_on, new=True)]
            elif cur is not None:
                rows = [r for r in rows if cur.accept(r) or _changed(r, values, ep.refresh_on)]
            if rows and ep.arrow:
                held.extend(rows)
                if len(held) >= BATCH_ROWS:
                    yield known["arrow"].table(held)
                    held = []
            elif rows:
                yield rows
        if held:
            yield known["arrow"].table(held)

    return step


def _pages(parent: Row, field: str | None, page_size: int) -> float | None:
    """Pages the child list of `parent` should take, from its count `field` (None: unknown)."""
    n = parent.get(field) if field else None
    if isinstance(n, bool) or not isinstance(n, (int, float)) or not 0 <= n < math.inf:
        return None
    return max(1.0, math.ceil(n / max(1, page_size)))


def _changed(row: Row, known: dict[str, tuple[Any, ...]], fields: tuple[str, ...],
             new: bool = False) -> bool:
    """True if the warehouse holds `row` with other values of `fields` (or, with `new`, does
    not hold it at all)."""
    old = known.get(str(row.get("id")))
    if old is None:
        return new
    return old != tuple(row.get(f) for f in fields)


def child_object(ctx: Context, ep: Endpoint) -> Callable[[Any], Iterator[list[Row]]]:
    """One object per parent record (stats), fetched concurrently."""
    def step(items: Any) -> Iterator[list[Row]]:
        if isinstance(items, WalkComplete):
            return
        parents = items if isinstance(items, list) else [items]

        def job(parent: Row) -> Callable[[], Iterator[Row]]:
            def run() -> Iterator[Row]:
                body = ctx.client.request("GET", _child_path(ep, str(parent[ep.parent_field])))
                body.pop("request_id", None)
                yield body
            return run

        out = [obj for _, obj in fan_out([(p["id"], job(p)) for p in parents
                                           if p.get("id") is not None], ctx.walks(),
                                   places=ctx.client.places)
               if obj is not DONE]
        yield from _checked(ctx, ep, out)

    return step


def profiles(ctx: Context, ep: Endpoint) -> Callable[[Any], Iterator[list[Row]]]:
    """Full profiles (scores, segments, referral stats) of contacts changed since last time."""
    tally = Tally()
    run: dict[str, Any] = {}

    def cursor() -> Cursor:
        if "cursor" not in run:
            run["cursor"] = Cursor(table_marks(ep.table), "all", ep.cursor or "updated_at",
                                   ctx.start_date, ctx.end_date)
        return run["cursor"]  # type: ignore[no-any-return]

    def fetch(contact: Row) -> Callable[[], Iterator[Row]]:
        def get() -> Iterator[Row]:
            try:
                body = ctx.client.request("GET", _child_path(ep, str(contact["id"])))
            except NotFoundError:
                return  # deleted between the list and this read: the deletes pass sees it
            body.pop("request_id", None)
            yield body
        return get

    def step(items: Any) -> Iterator[list[Row]]:
        fresh(ctx, ep, run, tally)
        if isinstance(items, WalkComplete):
            if tally.marker(items):
                cursor().commit()
            return
        valid, _ = rejects.check(ep, items, ctx.run_started, ep.cursor)
        cur = cursor()
        if "held" not in run:
            run["held"] = _held(ep.table, cur.field)
        changed = [c for c in valid if cur.accept(c) or _moved(cur, c, run["held"])]
        out = [p for _, p in fan_out([(c["id"], fetch(c)) for c in changed], ctx.walks(),
                                       places=ctx.client.places)
               if p is not DONE]
        last = tally.page()
        yield from _checked(ctx, ep, shapes.conform(ep, out), "")
        if last:
            cursor().commit()

    return step
