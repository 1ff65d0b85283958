"""Bearer keys and scopes, as the docs describe them."""

from __future__ import annotations

from .errors import ApiError
from .world import World

# Query parameters a confused client might put a key in: the API refuses keys outside the header.
_KEY_PARAMS = ("api_key", "apikey", "key", "token", "access_token")
REVOKE_GRACE_MS = 24 * 3_600_000


def authenticate(world: World, authorization: str | None, params: dict[str, str]):  # type: ignore[no-untyped-def]
    """The key of a request, or 401 `unauthorized` with a message saying what is wrong."""
    if any(p in params for p in _KEY_PARAMS):
        raise ApiError(401, "unauthorized",
                       "API keys are accepted only in the Authorization header, never in the URL")
    if not authorization or not authorization.startswith("Bearer "):
        raise ApiError(401, "unauthorized",
                       "missing API key: send 'Authorization: Bearer gos_sk_...'")
    token = authorization[len("Bearer "):].strip()
    if token.startswith("gos_wk_"):
        raise ApiError(401, "unauthorized",
                       "write keys (gos_wk_) are for the Ingest API only: use a gos_sk_ secret key")
    info = world.keys.get(token)
    if info is None:
        raise ApiError(401, "unauthorized", "invalid API key")
    if info.revoked_at_ms is not None and world.clock.now() >= info.revoked_at_ms + REVOKE_GRACE_MS:
        raise ApiError(401, "unauthorized", "this API key was revoked")
    return info


def require_scope(scopes: list[str], required: str) -> None:
    if "*" in scopes or required in scopes:
        return
    raise ApiError(403, "insufficient_scope",
                   f"this API key lacks the scope '{required}'",
                   [{"required_scope": required, "granted_scopes": list(scopes)}])
