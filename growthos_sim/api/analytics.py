"""Analytics: the event stream, the overview, event-count queries, funnels and cohorts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from ..errors import ApiError, bad_param, invalid, not_found
from ..pagination import page_body, parse_limit
from ..routing import Request, Response, handler
from ..util import iso_date, parse_ms
from .common import ok


def _ms_param(req: Request, name: str) -> int | None:
    raw = req.params.get(name)
    if raw is None:
        return None
    try:
        return parse_ms(raw)
    except ValueError:
        raise bad_param(name, "must be an ISO 8601 date-time, e.g. 2026-02-20T14:22:00Z") from None


def event_page(req: Request, scope: str, contact_id: str | None = None) -> Response:
    """Newest-first page of events; `from` inclusive, `to` exclusive, on `timestamp`."""
    limit = parse_limit(req.params, req.world.dialect.default_limit)
    after = None
    if "cursor" in req.params:
        k = req.cursor_secret.decode(scope, req.params["cursor"])
        after = (int(k[0]), str(k[1]))
    blobs, last = req.world.events.page(
        after, limit, from_ms=_ms_param(req, "from"), to_ms=_ms_param(req, "to"),
        event=req.params.get("event"), contact_id=contact_id or req.params.get("contact_id"))
    nxt = None if last is None else req.cursor_secret.encode(scope, list(last))
    return Response(200, page_body(blobs, nxt, req.request_id))


@handler("listEvents")
def list_events(req: Request) -> Response:
    return event_page(req, "events")


@handler("getAnalyticsOverview")
def overview(req: Request) -> Response:
    return ok(req.world.overview())


def _date(body: dict, name: str) -> dt.date:  # type: ignore[type-arg]
    try:
        return dt.date.fromisoformat(str(body[name]))
    except ValueError:
        raise invalid(name, "must be a date YYYY-MM-DD") from None


def _intervals(start: dt.date, end: dt.date, interval: str) -> int:
    """How many intervals (days, weeks or months) the range [start, end] touches."""
    if interval == "week":
        return (_interval_start(end, "week") - _interval_start(start, "week")).days // 7 + 1
    if interval == "month":
        return (end.year - start.year) * 12 + end.month - start.month + 1
    return (end - start).days + 1


def _interval_start(d: dt.date, interval: str) -> dt.date:
    if interval == "week":
        return d - dt.timedelta(days=d.weekday())
    if interval == "month":
        return d.replace(day=1)
    return d


@handler("queryAnalytics")
def query(req: Request) -> Response:
    body = req.body
    start, end = _date(body, "from"), _date(body, "to")
    interval = body.get("interval") or "day"
    if end < start:
        raise invalid("to", "must not be before 'from'")
    if _intervals(start, end, interval) > 366:
        raise invalid("to", "at most 366 intervals per query")
    qtype = body["type"]
    if qtype not in ("event_count", "unique_contacts"):
        raise ApiError(422, "validation_error",
                       f"query type '{qtype}' is answered by GET /analytics/funnels/{{id}} "
                       "or /cohorts/{id}", [{"field": "type", "reason": "unsupported here"}])
    event = body.get("event")
    group_by = body.get("group_by")
    if group_by not in (None, "event"):  # only a dialect whose contract allows paths gets here
        return ok(_by_path(req, qtype, start, end, event, interval, str(group_by)))
    grouped = group_by == "event"
    if qtype == "unique_contacts":
        return ok(_unique_contacts(req, start, end, event, interval, grouped))
    by_day = req.world.event_counts(start.isoformat(), end.isoformat(), event)
    buckets: dict[str, dict[str, int]] = {}
    for day, groups in by_day.items():
        key = _interval_start(dt.date.fromisoformat(day), interval).isoformat()
        b = buckets.setdefault(key, {})
        for name, n in groups.items():
            b[name] = b.get(name, 0) + n
    data = []
    total = 0
    for key in sorted(buckets):
        groups = buckets[key]
        n = sum(groups.values())
        total += n
        data.append({"date": key, "groups": dict(sorted(groups.items())) if grouped
                     else {"all": n}})
    return ok({"type": qtype, "data": data, "total": total})


def _unique_contacts(req: Request, start: dt.date, end: dt.date, event: str | None,
                     interval: str, grouped: bool) -> dict[str, Any]:
    """Distinct contacts per interval (and per event name when grouped); `total` counts the
    distinct contacts of the whole range. Uniques do not add up: a contact active on two days
    of one week is one contact of that week."""
    ev = req.world.events
    lo = parse_ms(start.isoformat())
    hi = parse_ms(end.isoformat()) + 86_400_000  # end of the last day (9999-12-31 too)
    import bisect

    keys: dict[str, str] = {}  # day -> start of its interval
    seen: dict[str, dict[str, set[str]]] = {}
    everyone: set[str] = set()
    for i in range(bisect.bisect_left(ev.ts, lo), bisect.bisect_left(ev.ts, hi)):
        name = ev.name[i]
        if event is not None and name != event:
            continue
        day = iso_date(ev.ts[i])
        key = keys.get(day)
        if key is None:
            key = keys[day] = _interval_start(dt.date.fromisoformat(day), interval).isoformat()
        seen.setdefault(key, {}).setdefault(name if grouped else "all", set()).add(ev.contact[i])
        everyone.add(ev.contact[i])
    data = [{"date": k, "groups": {g: len(c) for g, c in sorted(seen[k].items())}}
            for k in sorted(seen)]
    return {"type": "unique_contacts", "data": data, "total": len(everyone)}


def _path_value(req: Request, i: int, path: str) -> str:
    """The group of event `i` for a field path: `event` (its name), `traits.x` (its contact's
    trait), else a path into the event itself (`properties.plan`, `context.locale`)."""
    ev = req.world.events
    node: Any
    if path == "event":
        return ev.name[i]
    parts = path.split(".")
    if parts[0] == "traits":
        contact = req.world.contacts.get(ev.contact[i], include_deleted=True)
        node = contact["traits"] if contact else None
        parts = parts[1:]
    else:
        node = orjson.loads(ev.blob[i])
    for p in parts:
        node = node.get(p) if isinstance(node, dict) else None
    return "null" if node is None else node if isinstance(node, str) else orjson.dumps(
        node).decode()


def _by_path(req: Request, qtype: str, start: dt.date, end: dt.date, event: str | None,
             interval: str, path: str) -> dict[str, Any]:
    """The docs' `group_by` (a field path, e.g. `traits.source`): counts, or distinct contacts,
    per interval and value of that field."""
    import bisect

    ev = req.world.events
    lo = parse_ms(start.isoformat())
    hi = parse_ms(end.isoformat()) + 86_400_000
    counts: dict[str, dict[str, int]] = {}
    uniques: dict[str, dict[str, set[str]]] = {}
    everyone: set[str] = set()
    for i in range(bisect.bisect_left(ev.ts, lo), bisect.bisect_left(ev.ts, hi)):
        if event is not None and ev.name[i] != event:
            continue
        key = _interval_start(dt.date.fromisoformat(iso_date(ev.ts[i])), interval).isoformat()
        group = _path_value(req, i, path)
        groups = counts.setdefault(key, {})
        groups[group] = groups.get(group, 0) + 1
        uniques.setdefault(key, {}).setdefault(group, set()).add(ev.contact[i])
        everyone.add(ev.contact[i])
    if qtype == "unique_contacts":
        data = [{"date": k, "groups": {g: len(c) for g, c in sorted(uniques[k].items())}}
                for k in sorted(uniques)]
        return {"type": qtype, "data": data, "total": len(everyone)}
    data = [{"date": k, "groups": dict(sorted(counts[k].items()))} for k in sorted(counts)]
    return {"type": qtype, "data": data, "total": sum(sum(g.values()) for g in counts.values())}


@handler("getFunnel")
def funnel(req: Request) -> Response:
    f = req.world.funnels.get(req.path_params["id"])
    if f is None:
        raise not_found("funnel", req.path_params["id"])
    return ok(f)


@handler("getCohort")
def cohort(req: Request) -> Response:
    c = req.world.cohorts.get(req.path_params["id"])
    if c is None:
        raise not_found("cohort", req.path_params["id"])
    return ok(c)
