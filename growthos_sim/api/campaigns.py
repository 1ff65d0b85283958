"""Campaigns: CRUD, lifecycle actions, stats."""

from __future__ import annotations

from ..errors import ApiError, bad_param, invalid
from ..generate import new_campaign
from ..routing import Request, Response, handler
from ..util import iso_ms, parse_ms
from .common import MAX_MS, MIN_MS, apply_patch, get, list_table, now, ok, segment_ref

_FIELDS = ("name", "segment_id", "subject", "template_id", "trigger", "steps", "scheduled_at")


def _norm(req: Request, body: dict) -> dict:  # type: ignore[type-arg]
    segment_ref(req, body.get("segment_id"), "segment_id")
    if body.get("trigger") is not None:
        segment_ref(req, body["trigger"].get("segment_id"), "trigger.segment_id")
        body["trigger"] = {"event": body["trigger"].get("event", "signup"),
                           "segment_id": body["trigger"].get("segment_id")}
    if body.get("scheduled_at") is not None:
        # Stored as the API writes every timestamp: UTC, `Z`, milliseconds.
        ms = parse_ms(body["scheduled_at"])
        if not MIN_MS <= ms <= MAX_MS:
            raise invalid("scheduled_at", "must fall in the years 1000 to 9999 (UTC)")
        body["scheduled_at"] = iso_ms(ms)
    if "steps" in body:
        body["steps"] = [{"delay": s.get("delay", "0d"), "subject": s.get("subject", ""),
                          "template_id": s.get("template_id", "")} for s in body["steps"]]
    return body


@handler("createCampaign")
def create_campaign(req: Request) -> Response:
    w = req.world
    camp = new_campaign(w, w.rng, w.clock.tick())
    body = _norm(req, dict(req.body))
    camp["status"] = "draft"
    apply_patch(w.campaigns, camp, body, _FIELDS + ("type",), camp["created_at"])
    w.campaign_stats[camp["id"]]["status"] = "draft"
    return ok(camp, 201)


_TYPES = ("lifecycle", "broadcast")
_STATUSES = ("draft", "scheduled", "active", "paused", "completed", "archived")


@handler("listCampaigns")
def list_campaigns(req: Request) -> Response:
    t, s = req.params.get("type"), req.params.get("status")
    for name, value, allowed in (("type", t, _TYPES), ("status", s, _STATUSES)):
        if value is not None and value not in allowed:
            raise bad_param(name, f"must be one of {', '.join(allowed)}")
    pred = None
    if t is not None or s is not None:
        def pred(c: dict) -> bool:  # type: ignore[type-arg]
            return (t is None or c["type"] == t) and (s is None or c["status"] == s)
    return list_table(req, req.world.campaigns, "campaigns", pred)


@handler("getCampaign")
def get_campaign(req: Request) -> Response:
    return ok(get(req.world.campaigns, req.path_params["id"], "campaign"))


@handler("updateCampaign")
def update_campaign(req: Request) -> Response:
    w = req.world
    camp = get(w.campaigns, req.path_params["id"], "campaign")
    return ok(apply_patch(w.campaigns, camp, _norm(req, dict(req.body)), _FIELDS, now(req)))


def _set_status(req: Request, status: str, allowed_from: tuple[str, ...]) -> Response:
    w = req.world
    camp = get(w.campaigns, req.path_params["id"], "campaign")
    if camp["status"] not in allowed_from:
        raise ApiError(409, "conflict", f"a {camp['status']} campaign cannot become {status}")
    apply_patch(w.campaigns, camp, {"status": status}, ("status",), now(req))
    w.campaign_stats[camp["id"]]["status"] = status
    return ok(camp)


@handler("activateCampaign")
def activate(req: Request) -> Response:
    return _set_status(req, "active", ("draft", "scheduled", "paused", "active"))


@handler("pauseCampaign")
def pause(req: Request) -> Response:
    return _set_status(req, "paused", ("active", "scheduled", "paused"))


@handler("testCampaign")
def test_send(req: Request) -> Response:
    get(req.world.campaigns, req.path_params["id"], "campaign")
    return ok({"sent": True})


@handler("getCampaignStats")
def stats(req: Request) -> Response:
    camp = get(req.world.campaigns, req.path_params["id"], "campaign")
    return ok(req.world.campaign_stats[camp["id"]])
