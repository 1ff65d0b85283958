"""/_sim/truth/{table}: every live record of one connector table, exactly as the connector
should end up holding it (the API's fields plus the parent key of child lists)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .table import Table
from .util import dumps
from .world import World

Rows = Iterator[bytes]


def _table(t: Table, include_deleted: bool, extra: dict[str, Any] | None = None) -> Rows:
    for key in t._keys:
        rid = key[1]
        rec = t.rows[rid]
        deleted_at = t.deleted.get(rid)
        if deleted_at is not None and not include_deleted:
            continue
        if extra is None and deleted_at is None:
            yield t.blob(rid)
            continue
        out = {**rec, **(extra or {})}
        if deleted_at is not None:
            out["deleted_at"] = deleted_at
        yield dumps(out)


def _children(parents: Table, children: dict[str, Table], parent_key: str | None,
              inc: bool) -> Rows:
    for parent in parents.iter_live():
        extra = {parent_key: parent["id"]} if parent_key else None
        yield from _table(children[parent["id"]], inc, extra)


def _objs(objs: Any) -> Rows:
    for o in objs:
        yield dumps(o)


def tables(w: World) -> dict[str, Callable[[bool], Rows]]:
    """Truth generators by connector table name (argument: include soft-deleted records)."""
    return {
        "contacts": lambda inc: _table(w.contacts, inc),
        "contact_profiles": lambda inc: _objs(w.profile(c) for c in w.contacts.iter_live()),
        "segments": lambda inc: _table(w.segments, inc),
        "segment_memberships": lambda inc: _children(w.segments, w.members, "segment_id", inc),
        "referral_programs": lambda inc: _table(w.programs, inc),
        "referral_links": lambda inc: _children(w.programs, w.links, None, inc),
        "referral_conversions": lambda inc: (
            b for p in w.programs.iter_live() for link in w.links[p["id"]].iter_live()
            for b in _table(w.conversions[link["code"]], inc)),
        "referral_leaderboard": lambda inc: _objs(
            {**row, "program_id": p["id"]} for p in w.programs.iter_live()
            for row in w.leaderboard(p["id"])),
        "campaigns": lambda inc: _table(w.campaigns, inc),
        "campaign_stats": lambda inc: _objs(w.campaign_stats[c["id"]]
                                            for c in w.campaigns.iter_live()),
        "surveys": lambda inc: _table(w.surveys, inc),
        "survey_responses": lambda inc: _children(w.surveys, w.responses, "survey_id", inc),
        "survey_stats": lambda inc: _objs(w.survey_stats(s["id"]) for s in w.surveys.iter_live()),
        "waitlists": lambda inc: _table(w.waitlists, inc),
        "waitlist_entries": lambda inc: _children(w.waitlists, w.entries, "waitlist_id", inc),
        "webhook_endpoints": lambda inc: _table(w.webhooks, inc),
        "webhook_deliveries": lambda inc: _children(w.webhooks, w.deliveries, "endpoint_id", inc),
        "events": lambda inc: w.events.iter_blobs(),
        "analytics_overview": lambda inc: _objs([w.overview()]),
        "daily_event_counts": lambda inc: _objs(
            {"date": d, "event": e, "count": n} for (d, e), n in sorted(w.events.daily.items())),
        "funnels": lambda inc: _objs(w.funnels.values()),
        "cohorts": lambda inc: _objs(w.cohorts.values()),
        "project_settings": lambda inc: _objs([w.project]),
        "api_keys": lambda inc: _table(w.api_keys, inc),
    }


def truth_jsonl(w: World, table: str, include_deleted: bool) -> bytes | None:
    gen = tables(w).get(table)
    if gen is None:
        return None
    render = w.dialect.truth
    return b"".join(render(table, line) + b"\n" for line in gen(include_deleted))

