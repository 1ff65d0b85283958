"""Segments: CRUD, members, size estimate."""

from __future__ import annotations

from ..generate import new_segment
from ..routing import Request, Response, handler
from . import common
from .common import apply_patch, get, list_table, now, ok


@handler("createSegment")
def create_segment(req: Request) -> Response:
    w = req.world
    seg = new_segment(w, w.rng, w.clock.tick())
    seg["name"] = req.body["name"]
    seg["rules"] = _full_rules(req.body["rules"])
    seg["description"] = req.body.get("description")
    w.segments.touch(seg["id"])
    return ok(seg, 201)


def _full_rules(group: dict) -> dict:  # type: ignore[type-arg]
    """Fill optional condition fields so stored rules match the response schema."""
    conds = []
    for c in group.get("conditions", []):
        if "conditions" in c:
            conds.append(_full_rules(c))
        else:
            conds.append({"field": c["field"], "op": c["op"], "value": c.get("value"),
                          "window": c.get("window")})
    return {"operator": group.get("operator", "AND"), "conditions": conds}


@handler("listSegments")
def list_segments(req: Request) -> Response:
    return list_table(req, req.world.segments, "segments")


@handler("getSegment")
def get_segment(req: Request) -> Response:
    return ok(get(req.world.segments, req.path_params["id"], "segment"))


@handler("updateSegment")
def update_segment(req: Request) -> Response:
    w = req.world
    seg = get(w.segments, req.path_params["id"], "segment")
    body = dict(req.body)
    if "rules" in body:
        body["rules"] = _full_rules(body["rules"])
    return ok(apply_patch(w.segments, seg, body, ("name", "description", "rules"), now(req)))


@handler("deleteSegment")
def delete_segment(req: Request) -> Response:
    seg = get(req.world.segments, req.path_params["id"], "segment")
    req.world.segments.soft_delete(seg["id"], now(req))
    return Response(204, None)


@handler("listSegmentContacts")
def list_segment_contacts(req: Request) -> Response:
    sid = req.path_params["id"]
    get(req.world.segments, sid, "segment")
    return list_table(req, common.child(req.world.members, sid, "segment"), f"members:{sid}")


@handler("estimateSegment")
def estimate_segment(req: Request) -> Response:
    w = req.world
    seg = get(w.segments, req.path_params["id"], "segment")
    total = len(w.contacts)
    n = seg["contact_count"]
    return ok({"estimated_count": n, "total_contacts": total,
               "percentage": round(100.0 * n / total, 2) if total else 0.0})
