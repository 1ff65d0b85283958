"""Single objects, objects by configured id (the API cannot list them), and the daily event
counts query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from .. import timeline
from ..endpoints import Endpoint
from ..errors import MalformedResponseError, NotFoundError, ScopeError
from ..incremental import parse_ts
from .context import Context, Row, _checked, _child_path, logger, table_marks


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
