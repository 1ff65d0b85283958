"""Waitlists (no list endpoint is documented) and their entries."""

from __future__ import annotations

from ..errors import ApiError
from ..generate import new_entry, new_waitlist
from ..routing import Request, Response, handler
from ..table import Record
from .common import apply_patch, get, list_table, now, ok

_FIELDS = ("name", "slug", "referral_boost", "auto_approve", "welcome_email_template_id")


@handler("createWaitlist")
def create_waitlist(req: Request) -> Response:
    w = req.world
    wl = new_waitlist(w, w.rng, w.clock.tick())
    apply_patch(w.waitlists, wl, req.body, _FIELDS, wl["created_at"])
    return ok(wl, 201)


@handler("getWaitlist")
def get_waitlist(req: Request) -> Response:
    return ok(get(req.world.waitlists, req.path_params["id"], "waitlist"))


@handler("listWaitlistEntries")
def list_entries(req: Request) -> Response:
    wl = get(req.world.waitlists, req.path_params["id"], "waitlist")
    return list_table(req, req.world.entries[wl["id"]], f"entries:{wl['id']}",
                      extra={"total_entries": wl["total_entries"]})


@handler("createWaitlistEntry")
def create_entry(req: Request) -> Response:
    w = req.world
    wl = get(w.waitlists, req.path_params["id"], "waitlist")
    email = req.body["email"]
    for e in w.entries[wl["id"]].iter_live():
        if e["email"] == email:
            raise ApiError(409, "conflict", f"{email} is already on this waitlist")
    contact = next((c for c in w.contacts.iter_live() if c["email"] == email), None)
    if contact is None:
        from ..generate import new_contact

        contact = new_contact(w, w.rng, w.clock.tick())
        contact["email"] = email
        contact["traits"].update(req.body.get("traits", {}))
    entry = new_entry(w, w.rng, wl, contact, w.clock.tick())
    entry["email"] = email
    if wl["auto_approve"]:
        entry["status"] = "approved"
    return ok(entry, 201)


def _approve(w, wl: Record, entry: Record) -> None:  # type: ignore[no-untyped-def]
    entry["status"] = "approved"
    w.entries[wl["id"]].touch(entry["id"])


@handler("approveWaitlistEntry")
def approve(req: Request) -> Response:
    w = req.world
    wl = get(w.waitlists, req.path_params["id"], "waitlist")
    entry = get(w.entries[wl["id"]], req.path_params["entry_id"], "waitlist entry")
    _approve(w, wl, entry)
    now(req)
    return ok(entry)


@handler("approveWaitlistEntries")
def approve_batch(req: Request) -> Response:
    w = req.world
    wl = get(w.waitlists, req.path_params["id"], "waitlist")
    waiting = [e for e in w.entries[wl["id"]].iter_live() if e["status"] == "waiting"]
    key = "joined_at" if req.body.get("order") == "joined_at" else "position"
    waiting.sort(key=lambda e: e[key])
    chosen = waiting[: int(req.body["count"])]
    for e in chosen:
        _approve(w, wl, e)
    return ok({"approved": len(chosen)})
