"""Opaque keyset cursors and the page envelope.

A cursor carries the key of the last record served, the operation (and parent) it belongs to and
when it was issued, signed so a client cannot forge or edit one. Cursors older than
`CURSOR_TTL_S` are rejected as expired, as the docs warn real ones may be.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import orjson

from .errors import ApiError, bad_param

CURSOR_TTL_S = 3600
DEFAULT_LIMIT = 50
MAX_LIMIT = 100


class Cursors:
    """Issues and checks cursors with a per-server secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sig(self, payload: bytes) -> str:
        return hmac.digest(self._secret, payload, hashlib.sha256).hex()[:16]

    def encode(self, scope: str, key: Any) -> str:
        payload = orjson.dumps({"s": scope, "k": key, "t": int(time.time())})
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._sig(payload)

    def decode(self, scope: str, cursor: str) -> Any:
        """The key inside `cursor`; 400 `invalid_cursor` / `cursor_expired` when unusable.

        A `~n` suffix (added by the empty-page fault to make a fresh cursor for the same
        position) is ignored.
        """
        cursor = cursor.split("~", 1)[0]
        try:
            body, sig = cursor.rsplit(".", 1)
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            ok = hmac.compare_digest(sig, self._sig(payload))
            data = orjson.loads(payload) if ok else None
        except (ValueError, TypeError, orjson.JSONDecodeError):
            data = None
        if not isinstance(data, dict) or data.get("s") != scope:
            raise ApiError(400, "invalid_cursor",
                           "the cursor is not valid for this list: restart the walk without it")
        if time.time() - data["t"] > CURSOR_TTL_S:
            raise ApiError(400, "cursor_expired",
                           "the cursor has expired: restart the walk without it")
        return data["k"]


def parse_limit(params: dict[str, str], default: int = DEFAULT_LIMIT) -> int:
    """The page size asked for; `default` (the dialect's) when the request sends none."""
    raw = params.get("limit")
    if raw is None:
        return default
    try:
        n = int(raw)
    except ValueError:
        raise bad_param("limit", "must be an integer between 1 and 100") from None
    if not 1 <= n <= MAX_LIMIT:
        raise bad_param("limit", "must be between 1 and 100")
    return n


def page_body(blobs: list[bytes], next_cursor: str | None, request_id: str,
              extra: dict[str, Any] | None = None) -> bytes:
    """The page JSON, assembled from the records' cached JSON without re-serializing them."""
    tail: dict[str, Any] = {"has_more": next_cursor is not None, "next_cursor": next_cursor}
    if extra:
        tail.update(extra)
    tail["request_id"] = request_id
    return b'{"data":[' + b",".join(blobs) + b"]," + orjson.dumps(tail)[1:]
