"""The generator behind each kind of endpoint. `source.py` wraps these in dlt resources.

Every reader takes a `Context` (client, options) and the endpoint settings. Incremental marks
are kept in `dlt.current.resource_state()`, per parent for child lists.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dlt

from . import rejects, shapes, timeline
from .endpoints import Endpoint, root_table
from .errors import MalformedResponseError, NotFoundError, ScopeError
from .http import GrowthOSClient, quote_path_segment
from .http.fanout import DONE, fan_out
from .incremental import Cursor, iso_z, parse_ts, ts_key
from .prefetch import EventFeed
from .timeline import contact_windows
from .walks import walk
from .warehouse import deletes

logger = logging.getLogger("growthos_source")
Row = dict[str, Any]


@dataclass
class WalkComplete:
    """Sent by a parent walk after its last page: the ids it saw, and whether the walk covered
    the whole list (only then may missing ids be taken as deleted)."""

    table: str
    seen: set[str]
    whole_list: bool
    pages: int
    # A walk by created_at windows cannot see a record without created_at: only warehouse rows
    # with this column set may then be taken as deleted.
    requires: str | None = None


class Tally:
    """Tells when a transformer has handled a whole parent walk.

    dlt evaluates a transformer's steps round-robin, so the WalkComplete marker can be handled
    before the last pages; the walk is done once the marker arrived and its page count is met.
    """

    def __init__(self) -> None:
        self.pages = 0
        self.expected: int | None = None

    def page(self) -> bool:
        self.pages += 1
        return self.done()

    def marker(self, m: WalkComplete) -> bool:
        self.expected = m.pages
        return self.done()

    def done(self) -> bool:
        return self.expected is not None and self.pages == self.expected

    def reset(self) -> None:
        self.pages, self.expected = 0, None


@dataclass
class Context:
    client: GrowthOSClient
    start_date: str | None = None
    end_date: str | None = None
    ids: dict[str, list[str]] = field(default_factory=dict)
    deletes: str = "mark"
    workers: int = 4
    page_size: int = 100
    events_window: dt.timedelta = dt.timedelta(days=7)
    events_windows_per_run: int | None = None
    settling_days: int | None = None
    run_started: str = ""
    events_feed: EventFeed | None = None
    # late events and merges (rereads.py)
    events_lookback: dt.timedelta = dt.timedelta(minutes=10)
    events_reconcile: bool = True
    events_reread_days: int = 31
    events_reattribute_requests: int = 1000
    project_timezone: str | None = None
    # A token per top-level resource, new each time dlt starts it: a run retried without a
    # failed table (isolation.py) extracts the same source again, and transformers must then
    # forget what they kept from the first attempt (see `fresh`).
    extracts: dict[str, object] = field(default_factory=dict)

    def walks(self, client: GrowthOSClient | None = None) -> int:
        """How many walks to run side by side now: what the rate and request times of
        `client` (default: this run's) need (http/concurrency.py), at most `workers`."""
        return max(1, min(self.workers, (client or self.client).concurrency_limit()))


def fresh(ctx: Context, ep: Endpoint, run: dict[str, Any], tally: Tally | None = None) -> None:
    """Clear a transformer's per-run memory if this is a new extract of its parent walk."""
    token = ctx.extracts.get(root_table(ep))
    if run.get("_extract") is not token:
        run.clear()
        run["_extract"] = token
        if tally is not None:
            tally.reset()


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


def table_marks(table: str) -> dict[str, Any]:
    """The incremental marks of one table. Kept in the source state under the table's name:
    `resource_state()` resolves the "current" resource, which is ambiguous in transformers fed
    by a shared parent walk."""
    marks = dlt.current.source_state().setdefault("marks", {})
    return marks.setdefault(table, {})  # type: ignore[no-any-return]


def _id_field(ep: Endpoint) -> str:
    return "id" if "id" in ep.primary_key else ep.primary_key[-1]


def _child_path(ep: Endpoint, parent_value: str) -> str:
    return ep.path.replace(f"{{{ep.parent_field}}}", quote_path_segment(parent_value))


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


def _checked(ctx: Context, ep: Endpoint, rows: list[Row],
             cursor_field: str | None = None) -> Iterator[Any]:
    """The loadable rows, then the rejects (to `_growthos_rejects`)."""
    good, bad = rejects.check(ep, rows, ctx.run_started, cursor_field)
    if good:
        yield good
    if bad:
        yield rejects.hinted(bad)


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


# ---- children ---------------------------------------------------------------------------------
def child(ctx: Context, ep: Endpoint) -> Callable[[Any], Iterator[list[Row]]]:
    """A list per parent record, the parents' walks run concurrently."""
    known: dict[str, Any] = {}

    def step(items: Any) -> Iterator[list[Row]]:
        fresh(ctx, ep, known)
        if isinstance(items, WalkComplete):
            return
        parents = items if isinstance(items, list) else [items]
        cursors = table_marks(ep.table)
        if ep.refresh_on and "values" not in known:
            known["values"] = deletes.warehouse_values(ep.table, ep.refresh_on)
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

        jobs = []
        for parent in parents:
            if parent.get("id") is None or parent.get(ep.parent_field) is None:
                continue  # rejected with its own table
            pid = str(parent["id"])
            if ep.cursor:
                marks[pid] = Cursor(cursors, pid, ep.cursor, ctx.start_date, ctx.end_date)
            jobs.append((pid, job(parent)))
        for job_key, rows in fan_out(jobs, ctx.walks(), places=ctx.client.places):
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
            rows, bad = rejects.check(ep, rows, ctx.run_started, "" if unmarked else None)
            if bad:
                yield rejects.hinted(bad)
            cur = marks.get(key)
            values = known.get("values", {})
            if unmarked:
                rows = [r for r in rows if _changed(r, values, ep.refresh_on, new=True)]
            elif cur is not None:
                rows = [r for r in rows if cur.accept(r) or _changed(r, values, ep.refresh_on)]
            if rows:
                yield rows

    return step


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


# ---- single objects -----------------------------------------------------------------------------
def read_object(ctx: Context, ep: Endpoint) -> Iterator[Row]:
    body = ctx.client.request("GET", ep.path)
    body.pop("request_id", None)
    if ep.stamp:
        body[ep.stamp] = ctx.run_started
    yield from _checked(ctx, ep, [body])


def read_by_id(ctx: Context, ep: Endpoint) -> Iterator[list[Row]]:
    ids = ctx.ids.get(ep.ids_arg or "", [])
    if not ids:
        logger.info("%s: no %s configured; the API cannot list them, so nothing is loaded",
                    ep.table, ep.ids_arg)
        return
    out = []
    for rid in ids:
        try:
            body = ctx.client.request("GET", _child_path(ep, rid))
        except NotFoundError as exc:
            exc.add_hint(f"remove {rid!r} from sources.growthos.{ep.ids_arg}")
            raise
        body.pop("request_id", None)
        out.append(body)
    yield from _checked(ctx, ep, out)


# ---- analytics ------------------------------------------------------------------------------
def read_daily_counts(ctx: Context, ep: Endpoint) -> Iterator[list[Row]]:
    """Event counts per day and event name. Late events can change any day (an SDK's offline
    batch, a client clock), so by default the whole history is read again every run: one
    request per 366 days. `settling_days=N` re-reads only the last N days instead (cheaper,
    inexact for events arriving later than that)."""
    state = table_marks(ep.table)
    last = state.get("last_date")
    today = dt.datetime.now(dt.timezone.utc).date()
    if last and ctx.settling_days is not None:
        start = dt.date.fromisoformat(last) - dt.timedelta(days=ctx.settling_days)
    elif state.get("first_date"):
        start = dt.date.fromisoformat(state["first_date"])
    elif ctx.start_date:
        start = parse_ts(ctx.start_date).date()
    else:
        bounds = timeline.history_bounds(ctx.client, "/analytics/events", probes=ctx.walks())
        if bounds is None:
            return
        # Unknown start (the stream ignores its time filters): ask the query, which takes its
        # own dates, for the whole searchable past once; later runs start from last_date.
        start = (bounds[0] or bounds[1] - timeline.FAR).date()
    state.setdefault("first_date", start.isoformat())
    if ctx.start_date:
        start = max(start, parse_ts(ctx.start_date).date())
    end = (parse_ts(ctx.end_date) - dt.timedelta(microseconds=1)).date() if ctx.end_date \
        else today + dt.timedelta(days=1)
    newest = last
    probe = _newest_event(ctx)
    if probe is not None and not ctx.end_date:
        # Nothing is counted after the newest event (the day after it: days in a zone east of
        # UTC); a clock ahead of the API's would only ask for empty days.
        end = min(end, dt.date.fromisoformat(probe[0]) + dt.timedelta(days=1))
    a = start
    while a <= end:
        b = min(end, a + dt.timedelta(days=365))
        body = ctx.client.request("POST", ep.path, idempotent=True, json={
            "type": "event_count", "interval": "day", "from": a.isoformat(),
            "to": b.isoformat(), "group_by": "event"})
        rows = [{"date": item["date"], "event": name, "count": n}
                for item in body.get("data", []) for name, n in item.get("groups", {}).items()]
        if probe is not None and a.isoformat() <= probe[0] <= b.isoformat():
            _check_grouping(ep, rows, *probe)
        if rows:
            newest = max(newest or "", max(r["date"] for r in rows))
            yield rows
        a = b + dt.timedelta(days=1)
    if newest:
        state["last_date"] = newest


def _newest_event(ctx: Context) -> tuple[str, str] | None:
    """(day, name) of the newest event, to check the counts are grouped by event name; None
    without events or without the events:read scope (the check is then skipped)."""
    try:
        body = ctx.client.request("GET", "/analytics/events", params={"limit": 1})
    except ScopeError:
        return None
    data = body.get("data") or []
    try:
        return parse_ts(data[0]["timestamp"]).date().isoformat(), str(data[0]["event"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


def _check_grouping(ep: Endpoint, rows: list[Row], day: str, name: str) -> None:
    """Our document groups by event name only; the docs' query groups by a field path
    (`traits.source`), and an API that ignores `group_by` answers `{"all": n}`. Either way the
    `event` column would silently hold other values: stop instead, with one line."""
    names = sorted({str(r["event"]) for r in rows if r["date"] == day})
    if name not in names:
        raise MalformedResponseError(
            f"{ep.table}: POST {ep.path} did not count events by name (its groups on {day} are "
            f"{', '.join(names[:3]) or 'none'}, but that day has '{name}' events): this API's "
            f"group_by differs from the documented one; deselect {ep.table}")
