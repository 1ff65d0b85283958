"""The API's error responses as typed errors (the types are in growthos_source/errors.py).

Reads the documented envelope {"error": {code, message, details}, "request_id"} but copes
with anything (HTML from a proxy, empty bodies), because errors often come from load balancers
rather than from the API itself. Texts taken from responses are scrubbed (redact).
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import (
    API_KEY_HINT,
    ApiError,
    AuthenticationError,
    CursorExpiredError,
    GrowthOSError,
    NotFoundError,
    RateLimitError,
    ScopeError,
    ServerError,
    redact,
)

__all__ = ["error_from_response"]

_MAX_TEXT = 300


def _parse_envelope(body: bytes) -> tuple[str | None, str, list[Any], str | None]:
    """Return (code, message, details, request_id) from an error body, tolerating non-envelopes."""
    try:
        doc: Any = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        snippet = body[:_MAX_TEXT].decode("utf-8", "replace")
        return None, redact(snippet), [], None
    if not isinstance(doc, dict):
        return None, "", [], None
    request_id = doc.get("request_id")
    err = doc.get("error")
    if isinstance(err, dict):
        code, message, details = err.get("code"), err.get("message"), err.get("details")
        request_id = request_id or err.get("request_id")
    else:  # e.g. {"message": "..."} from a proxy, or {"error": "text"}
        code, message, details = None, err if isinstance(err, str) else doc.get("message"), None
    if isinstance(details, dict):
        details = [details]
    return (
        code if isinstance(code, str) else None,
        redact(str(message))[:_MAX_TEXT] if message else "",
        details if isinstance(details, list) else [],
        request_id if isinstance(request_id, str) else None,
    )


def _scope_facts(details: list[Any]) -> tuple[str | None, list[str]]:
    required: str | None = None
    granted: list[str] = []
    for item in details:
        if not isinstance(item, dict):
            continue
        if required is None and isinstance(item.get("required_scope"), str):
            required = item["required_scope"]
        if not granted and isinstance(item.get("granted_scopes"), list):
            granted = [str(s) for s in item["granted_scopes"]]
    return required, granted


_STATUS_HINTS = {
    400: "the request was invalid: check the resource's filters and parameters",
    409: "conflict with the current state of the resource: re-read it and retry",
    410: "this API version is retired: upgrade the connector",
    422: "the request failed validation: fix the fields named in details",
}


def error_from_response(
    status: int,
    body: bytes,
    path: str,
    *,
    method: str = "GET",
    attempts: int | None = None,
) -> GrowthOSError:
    """Turn an error response into the matching typed exception.

    Reads the documented envelope ``{"error": {code, message, details}, "request_id"}`` but
    copes with anything (HTML from a proxy, empty bodies), because errors often come from
    load balancers rather than from the API itself. ``attempts`` is mentioned in messages of
    errors that were retried.
    """
    code, text, details, rid = _parse_envelope(body)
    where = f"{method} {path}"
    said = f": {text}" if text else ""
    tries = f" after {attempts} attempts" if attempts else ""
    kw: dict[str, Any] = {"code": code, "request_id": rid, "status": status, "details": details}
    if status == 401:
        msg = f"the API key was rejected (missing, wrong or revoked) on {where}: {API_KEY_HINT}"
        return AuthenticationError(msg, **kw)
    if status == 403:
        required, granted = _scope_facts(details)
        if code == "insufficient_scope" or required is not None:
            return ScopeError(
                required_scope=required, granted_scopes=granted, path=path, method=method,
                code=code, request_id=rid, details=details,
            )
        msg = f"access to {where} was denied (403){said}; check the key's project and scopes"
        return ApiError(msg, **kw)
    if status == 404:
        msg = (
            f"{where} was not found (404): the resource does not exist or was deleted; "
            "if every resource fails, check that base_url ends with /v1"
        )
        return NotFoundError(msg, **kw)
    if status == 400 and code == "cursor_expired":
        msg = f"the pagination cursor of {where} expired: restart the walk from its beginning"
        return CursorExpiredError(msg, **kw)
    if status == 429:
        msg = (
            f"still rate limited (429) on {where}{tries}: lower max_requests_per_second or the "
            "number of extract workers, or check other jobs using the same key"
        )
        return RateLimitError(msg, **kw)
    if status >= 500:
        msg = (
            f"GrowthOS server error {status} on {where}{tries}{said}; retry later and report "
            "the request_id to GrowthOS if it persists"
        )
        return ServerError(msg, **kw)
    hint = _STATUS_HINTS.get(status, "unexpected response: check base_url and the connector")
    return ApiError(f"{where} was refused with status {status}{said}; {hint}", **kw)
