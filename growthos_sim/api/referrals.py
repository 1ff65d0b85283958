"""Referral programs, links, conversions and the leaderboard."""

from __future__ import annotations

from ..errors import bad_param, not_found
from ..generate import new_conversion, new_link, new_program
from ..routing import Request, Response, handler
from .common import apply_patch, get, list_records, list_table, now, ok

_PROGRAM_FIELDS = ("name", "reward_type", "reward_amount", "reward_currency", "referee_reward",
                   "tiers", "limits", "status")


def _limits(body: dict) -> dict:  # type: ignore[type-arg]
    if "limits" in body:
        lim = body["limits"]
        body["limits"] = {"max_referrals_per_contact": lim.get("max_referrals_per_contact"),
                          "conversion_window_days": lim.get("conversion_window_days", 30)}
    if "tiers" in body:
        body["tiers"] = [{"referrals": t.get("referrals", 1), "bonus": t.get("bonus", 0)}
                         for t in body["tiers"]]
    if body.get("referee_reward") is not None:
        rr = body["referee_reward"]
        body["referee_reward"] = {"type": rr.get("type", "discount"),
                                  "amount": rr.get("amount", 0), "currency": rr.get("currency")}
    return body


@handler("createReferralProgram")
def create_program(req: Request) -> Response:
    w = req.world
    prog = new_program(w, w.rng, w.clock.tick())
    apply_patch(w.programs, prog, _limits(dict(req.body)), _PROGRAM_FIELDS, prog["created_at"])
    return ok(prog, 201)


@handler("listReferralPrograms")
def list_programs(req: Request) -> Response:
    return list_table(req, req.world.programs, "programs")


@handler("getReferralProgram")
def get_program(req: Request) -> Response:
    prog = get(req.world.programs, req.path_params["id"], "referral program")
    return ok({**prog, "stats": req.world.program_stats(prog["id"])})


@handler("updateReferralProgram")
def update_program(req: Request) -> Response:
    w = req.world
    prog = get(w.programs, req.path_params["id"], "referral program")
    return ok(apply_patch(w.programs, prog, _limits(dict(req.body)), _PROGRAM_FIELDS, now(req)))


@handler("listReferralProgramLinks")
def list_links(req: Request) -> Response:
    pid = req.path_params["id"]
    get(req.world.programs, pid, "referral program")
    return list_table(req, req.world.links[pid], f"links:{pid}")


@handler("createReferralLink")
def create_link(req: Request) -> Response:
    w = req.world
    prog = get(w.programs, req.body["program_id"], "referral program")
    contact = get(w.contacts, req.body["contact_id"], "contact")
    link = new_link(w, w.rng, prog["id"], contact, w.clock.tick())
    if "channel" in req.body:
        link["channel"] = req.body["channel"]
    return ok(link, 201)


def _link(req: Request) -> dict:  # type: ignore[type-arg]
    link = req.world.link_by_code.get(req.path_params["code"])
    if link is None or req.world.programs.get(link["program_id"]) is None:
        raise not_found("referral link", req.path_params["code"])
    return link


@handler("getReferralLink")
def get_link(req: Request) -> Response:
    return ok(_link(req))


@handler("listReferralLinkConversions")
def list_conversions(req: Request) -> Response:
    link = _link(req)
    return list_table(req, req.world.conversions[link["code"]], f"conversions:{link['code']}")


@handler("createReferralConversion")
def create_conversion(req: Request) -> Response:
    w = req.world
    link = w.link_by_code.get(req.body["link_code"])
    if link is None:
        raise not_found("referral link", req.body["link_code"])
    referred = get(w.contacts, req.body["referred_contact_id"], "contact")
    conv = new_conversion(w, w.rng, link, referred, w.clock.tick())
    conv["conversion_event"] = req.body.get("conversion_event", "signup")
    conv["metadata"] = req.body.get("metadata", {})
    conv["reward_status"] = "pending"
    return ok(conv, 201)


@handler("getReferralLeaderboard")
def leaderboard(req: Request) -> Response:
    pid = req.params.get("program_id")
    if not pid:
        raise bad_param("program_id", "is required")
    get(req.world.programs, pid, "referral program")
    return list_records(req, req.world.leaderboard(pid), f"leaderboard:{pid}", "rank",
                        {"program_id": pid})

