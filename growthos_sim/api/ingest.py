"""The Ingest API over HTTP: `POST /v1/identify|track|page|group|alias|batch`, `GET /v1/decide`.

Served by the same server and port as the Management API (its paths do not collide), routed from
its own document (`openapi/ingest.yaml`) with its own pipeline: write keys instead of secret
keys, the Ingest API's rate limits and error codes (`bad_request`, `unauthenticated`,
`payload_too_large`, `validation_error`, `rate_limited`). Faults (`/_sim/faults`) and added
latency are not applied here: they exist to test the connector, which never calls this API.
"""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from .. import ingest
from ..errors import ApiError, invalid
from ..ratelimit import INGEST_PLANS, RateLimiter
from ..routing import Router, load_document
from ..validate import check_body, check_value
from ..world import World

if TYPE_CHECKING:
    from ..app import SimServer

DOC_PATH = "openapi/ingest.yaml"
DEFAULT_WRITE_KEY = "gos_wk_test_local"
Answer = tuple[int, bytes, dict[str, str]]


@dataclass
class IngestRequest:
    """What an ingest handler sees of one call."""

    params: dict[str, str]
    body: Any
    world: World
    router: Router
    ip: str
    user_agent: str


IngestHandler = Callable[[IngestRequest], tuple[int, dict[str, Any]]]
INGEST_HANDLERS: dict[str, IngestHandler] = {}


def _handler(op_id: str) -> Callable[[IngestHandler], IngestHandler]:
    def deco(fn: IngestHandler) -> IngestHandler:
        INGEST_HANDLERS[op_id] = fn
        return fn
    return deco


class IngestApi:
    """The Ingest API of one SimServer: its document, router, write keys and rate limiter."""

    def __init__(self, plan: str, write_keys: list[str]) -> None:
        for k in write_keys:
            if not k.startswith("gos_wk_"):
                raise ValueError("write keys start with gos_wk_ (e.g. gos_wk_test_local)")
        self.write_keys = frozenset(write_keys)
        self.document_bytes, doc = load_document(DOC_PATH)
        self.router = Router(doc, INGEST_HANDLERS)
        self.limiter = RateLimiter(plan, limits=INGEST_PLANS)

    def owns(self, path: str) -> bool:
        """Whether `path` (after /v1) is an Ingest API path, whatever the method."""
        return self.router.match("GET", path)[2]

    def handle(self, sim: SimServer, method: str, path: str, params: dict[str, str],
               headers: Any, raw: bytes, ip: str, request_id: str) -> Answer:
        rate: dict[str, str] = {}
        try:
            route, _, _ = self.router.match(method, path)
            if route is None:
                raise ApiError(405, "method_not_allowed", f"{method} is not supported on {path}",
                               headers={"Allow": ", ".join(self.router.allowed(path))})
            key = self._authenticate(headers.get("Authorization"), params)
            allowed, rate = self.limiter.hit(key)
            if not allowed:
                raise ApiError(429, "rate_limited", "rate limit exceeded for this write key: "
                               "retry after the Retry-After delay",
                               headers={"Retry-After": rate.pop("Retry-After")})
            body = None
            if route.body_schema is not None:
                body = self._body(route.body_schema, headers.get("Content-Type"), raw)
            with sim.world.lock:
                req = IngestRequest(params, body, sim.world, self.router, ip,
                                    headers.get("User-Agent") or "")
                status, out = INGEST_HANDLERS[route.op_id](req)
        except Exception as exc:  # noqa: BLE001 (a bug must still answer in the envelope)
            e = exc if isinstance(exc, ApiError) else ApiError(
                500, "internal_error", "internal server error: retry is safe")
            if not isinstance(exc, ApiError):
                traceback.print_exc()
            sim.stats.count(f"ingest_status_{e.status}")
            return e.status, orjson.dumps(e.body(request_id)), {**rate, **e.headers}
        sim.stats.count(f"ingest_status_{status}")
        return status, orjson.dumps({**out, "request_id": request_id}), rate

    def _authenticate(self, authorization: str | None, params: dict[str, str]) -> str:
        token = None
        if authorization and authorization.startswith("Bearer "):
            token = authorization[len("Bearer "):].strip()
        elif "writeKey" in params:
            token = params["writeKey"]
        if not token:
            raise ApiError(401, "unauthenticated", "missing write key: send 'Authorization: "
                           "Bearer gos_wk_...' (or the writeKey query parameter)")
        if token.startswith("gos_sk_"):
            raise ApiError(401, "unauthenticated", "secret keys (gos_sk_) are for the "
                           "Management API: the Ingest API takes a gos_wk_ write key")
        if token not in self.write_keys:
            raise ApiError(401, "unauthenticated", "invalid write key")
        return token

    def _body(self, schema: dict[str, Any], content_type: str | None, raw: bytes) -> Any:
        too_large = ingest.too_large(raw)
        if too_large is not None:
            raise too_large
        if not (content_type or "").lower().startswith("application/json"):
            raise ApiError(400, "bad_request", "send the body as JSON with 'Content-Type: "
                           "application/json'")
        try:
            return check_body(self.router, schema, raw)
        except ApiError as e:
            if e.status == 400:  # the Ingest API's code for malformed bodies
                raise ApiError(400, "bad_request", e.message) from None
            raise


# ---- handlers -----------------------------------------------------------------------------
def _one(kind: str, req: IngestRequest) -> tuple[int, dict[str, Any]]:
    ingest.check(kind, req.body)
    ingest.accept(req.world, kind, req.body, req.ip, req.user_agent)
    return 202, {"success": True}


def _single(kind: str) -> IngestHandler:
    def handle(req: IngestRequest) -> tuple[int, dict[str, Any]]:
        return _one(kind, req)
    return handle


for _kind in ("identify", "track", "page", "group", "alias"):
    _handler(_kind)(_single(_kind))


_ITEM_SCHEMAS = {"identify": "Identify", "track": "Track", "page": "Page", "group": "Group"}


@_handler("batch")
def batch(req: IngestRequest) -> tuple[int, dict[str, Any]]:
    """Each item checked and accepted on its own: one bad item fails only itself."""
    schemas = req.router.doc["components"]["schemas"]
    items: list[dict[str, Any]] = []
    for i, item in enumerate(req.body["batch"]):
        kind = item.get("type") if isinstance(item, dict) else None
        try:
            if not isinstance(item, dict):
                raise invalid(f"batch[{i}]", "must be an object with a 'type'")
            if kind not in ingest.BATCH_TYPES:
                raise invalid(f"batch[{i}].type",
                              f"must be one of {', '.join(ingest.BATCH_TYPES)}")
            msg = {k: v for k, v in item.items() if k != "type"}
            check_value(req.router, schemas[_ITEM_SCHEMAS[kind]], msg, f"batch[{i}]")
            ingest.check(kind, msg, f"batch[{i}]")
        except ApiError as e:
            items.append({"index": i, "status": e.status, "success": False, "error": e.message})
            continue
        ingest.accept(req.world, kind, msg, req.ip, req.user_agent)
        items.append({"index": i, "status": 202, "success": True})
    return 202, {"success": True, "items": items}


@_handler("decide")
def decide(req: IngestRequest) -> tuple[int, dict[str, Any]]:
    """Flags per contact, derived from a hash of its id (stable); widgets from the project's
    active referral program and NPS survey. Never contact data."""
    for name in ("user_id", "anonymous_id"):
        if name in req.params and not req.params[name]:
            raise invalid(name, "must not be empty when given")
    who = req.params.get("user_id") or req.params.get("anonymous_id")
    if not who:
        raise invalid("user_id", "or 'anonymous_id' is required")
    h = hashlib.sha256(who.encode()).digest()
    w = req.world
    program = next(iter(w.programs.iter_live()), None)
    nps = any(s["type"] == "nps" and s["status"] == "active" for s in w.surveys.iter_live())
    return 200, {
        "feature_flags": {"new_onboarding": h[0] % 2 == 0, "dark_mode": h[1] % 3 == 0},
        "active_experiments": [{"key": "pricing_test", "variant": "AB"[h[2] % 2]}],
        "widgets": {
            "referral": {"enabled": program is not None, "config": None if program is None else {
                "reward_type": program["reward_type"], "reward_amount": program["reward_amount"],
                "currency": program.get("reward_currency")}},
            "nps": {"enabled": nps, "delay_ms": 30000}},
    }
