"""Project settings and API keys (key material is never shown again after creation)."""

from __future__ import annotations

from ..generate import add_key
from ..routing import Request, Response, handler
from ..util import iso_ms
from .common import get, list_table, now, ok


@handler("getSettings")
def get_settings(req: Request) -> Response:
    return ok(req.world.project)


@handler("updateSettings")
def update_settings(req: Request) -> Response:
    w = req.world
    p = w.project
    for k in ("name", "domain", "timezone", "default_from_email"):
        if k in req.body:
            p[k] = req.body[k]
    p["updated_at"] = now(req)
    return ok(p)


@handler("listApiKeys")
def list_keys(req: Request) -> Response:
    return list_table(req, req.world.api_keys, "api_keys")


@handler("createApiKey")
def create_key(req: Request) -> Response:
    w = req.world
    token = f"gos_sk_live_{w.rng.getrandbits(128):032x}"
    add_key(w, token, list(req.body["scopes"]), w.clock.tick(), w.rng)
    info = w.keys[token]
    info.record["name"] = req.body["name"]
    w.api_keys.touch(info.record["id"])
    return ok({**info.record, "key": token}, 201)


@handler("deleteApiKey")
def delete_key(req: Request) -> Response:
    w = req.world
    rec = get(w.api_keys, req.path_params["id"], "API key")
    at = w.clock.tick()
    for info in w.keys.values():
        if info.record is rec:
            # Revoked keys keep working for 24 h (server clock), then answer 401.
            info.revoked_at_ms = at
    w.api_keys.soft_delete(rec["id"], iso_ms(at))
    return Response(204, None)
