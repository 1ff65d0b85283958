"""Contacts: list with filters, profile, PATCH, soft DELETE, merge, a contact's events/segments."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ApiError, not_found
from ..routing import Request, Response, handler
from ..table import Record
from . import common
from .common import get, list_table, now, ok


@handler("listContacts")
def list_contacts(req: Request) -> Response:
    w = req.world
    preds: list[Callable[[Record], bool]] = []
    seg_id = req.params.get("segment_id")
    if seg_id is not None:
        members = common.child(w.members, seg_id, "segment")
        if w.segments.get(seg_id) is None:
            raise not_found("segment", seg_id)
        preds.append(lambda c: members.get(c["id"]) is not None)
    tag = req.params.get("tag")
    if tag is not None:
        preds.append(lambda c: tag in c["tags"])
    after = common.time_param(req, "created_after")
    before = common.time_param(req, "created_before")
    pred = (lambda c: all(p(c) for p in preds)) if preds else None
    return list_table(req, w.contacts, "contacts", pred,
                      lo=(after, "\uffff") if after else None,
                      hi=(before, "") if before else None)


@handler("getContact")
def get_contact(req: Request) -> Response:
    return ok(req.world.profile(get(req.world.contacts, req.path_params["id"], "contact")))


@handler("updateContact")
def update_contact(req: Request) -> Response:
    w = req.world
    c = get(w.contacts, req.path_params["id"], "contact")
    if "traits" in req.body:
        # Traits merge key by key; a null value removes the key.
        for k, v in req.body["traits"].items():
            if v is None:
                c["traits"].pop(k, None)
            else:
                c["traits"][k] = v
    if "tags" in req.body:
        c["tags"] = list(req.body["tags"])
    c["updated_at"] = now(req)
    w.contacts.touch(c["id"])
    return ok(c)


def delete_contact_record(w, c: Record, at: str) -> None:  # type: ignore[no-untyped-def]
    """Soft delete: hidden from every list at once (also segment member lists)."""
    w.contacts.soft_delete(c["id"], at)
    for sid, t in w.members.items():
        if t.get(c["id"]) is not None:
            t.soft_delete(c["id"], at)
            w.sync_segment(sid)


@handler("deleteContact")
def delete_contact(req: Request) -> Response:
    c = get(req.world.contacts, req.path_params["id"], "contact")
    delete_contact_record(req.world, c, now(req))
    return Response(204, None)


def merge_records(w, target: Record, source: Record, prefer_source: bool, at: str) -> None:  # type: ignore[no-untyped-def]
    base, over = (target, source) if prefer_source else (source, target)
    traits = dict(base["traits"])
    traits.update(over["traits"])
    target["traits"] = traits
    target["tags"] = sorted(set(target["tags"]) | set(source["tags"]))
    if target["email"] is None or (prefer_source and source["email"] is not None):
        target["email"] = source["email"]
    adopted = target["external_id"] is None and source["external_id"] is not None
    if target["external_id"] is None:
        target["external_id"] = source["external_id"]
    w.events.reassign(source["id"], target["id"], target["external_id"])
    w.merged_into[source["id"]] = target["id"]  # events still queued for the source follow
    if adopted:
        # The target took the source's external_id: its own events' user_id follows, so every
        # event of a contact carries that contact's external_id.
        w.events.reassign(target["id"], target["id"], target["external_id"])
    target["updated_at"] = at
    w.contacts.touch(target["id"])
    delete_contact_record(w, source, at)


@handler("mergeContacts")
def merge_contacts(req: Request) -> Response:
    w = req.world
    target = get(w.contacts, req.path_params["id"], "contact")
    sid = req.body["source_contact_id"]
    if sid == target["id"]:
        raise ApiError(409, "conflict", "a contact cannot be merged into itself")
    source = w.contacts.get(sid)
    if source is None:
        raise not_found("contact", sid)
    prefer_source = req.body.get("conflict_resolution") == "prefer_source"
    merge_records(w, target, source, prefer_source, now(req))
    return ok(target)


@handler("listContactEvents")
def list_contact_events(req: Request) -> Response:
    cid = req.path_params["id"]
    get(req.world.contacts, cid, "contact")
    from .analytics import event_page

    return event_page(req, f"contact_events:{cid}", contact_id=cid)


@handler("listContactSegments")
def list_contact_segments(req: Request) -> Response:
    w = req.world
    cid = req.path_params["id"]
    get(w.contacts, cid, "contact")
    ids = set(w.segments_of(cid))
    return list_table(req, w.segments, f"contact_segments:{cid}", lambda s: s["id"] in ids)
