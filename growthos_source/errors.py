"""Typed errors of the GrowthOS connector.

Every error renders as ONE line saying what is wrong and how to fix it, followed by
``(code=..., request_id=...)`` when the API supplied them, so a failed pipeline run tells the
user what to do without digging through a traceback. No error ever carries the API key: texts
taken from responses are scrubbed of anything that looks like a GrowthOS key or bearer token.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "ApiError",
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionFailedError",
    "CursorExpiredError",
    "GrowthOSError",
    "MalformedResponseError",
    "NotFoundError",
    "PaginationError",
    "RateLimitError",
    "ScopeError",
    "ServerError",
    "error_from_response",
    "redact",
]

API_KEY_HINT = "check sources.growthos.api_key / SOURCES__GROWTHOS__API_KEY"
# Secret keys are gos_sk_..., write keys gos_wk_...; also catch any echoed "Bearer <token>".
_SECRET_RE = re.compile(r"gos_[a-z]{2}_[A-Za-z0-9_\-]+|(?i:bearer)\s+\S+")
_MAX_TEXT = 300


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Return ``text`` as one line, without key-like strings or any of ``secrets``.

    Used on every text that ends up in an error, because servers and proxies sometimes echo
    request headers back in error bodies.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _SECRET_RE.sub("***", text)
    return " ".join(text.split())


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    if isinstance(value, dict):
        return {str(k): _scrub(v, secrets) for k, v in value.items()}
    return value


def _restore(cls: type[GrowthOSError], state: dict[str, Any]) -> GrowthOSError:
    obj = cls.__new__(cls)
    Exception.__init__(obj, state.get("message", ""))
    obj.__dict__.update(state)
    return obj


class GrowthOSError(Exception):
    """Base of all connector errors; ``str()`` is one actionable line."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        status: int | None = None,
        details: list[Any] | None = None,
    ) -> None:
        self.message = redact(message)
        self.code = code
        self.request_id = request_id
        self.status = status
        self.details: list[Any] = _scrub(details or [], ())
        super().__init__(self.message)

    def __str__(self) -> str:
        known = [f"{k}={v}" for k, v in (("code", self.code), ("request_id", self.request_id)) if v]
        return f"{self.message} ({', '.join(known)})" if known else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, code={self.code!r}, "
            f"request_id={self.request_id!r}, status={self.status!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), dict(self.__dict__)))

    def scrub(self, *secrets: str) -> None:
        """Remove the given secret strings from every text attribute (defence in depth)."""
        for name, value in list(self.__dict__.items()):
            setattr(self, name, _scrub(value, secrets))
        self.args = (self.message,)

    def add_hint(self, hint: str) -> None:
        """Append one more fix suggestion to the message."""
        self.message = redact(f"{self.message}; {hint}")
        self.args = (self.message,)


class ConfigurationError(GrowthOSError):
    """The connector is configured wrongly (bad base_url, missing key, bad option)."""


class AuthenticationError(GrowthOSError):
    """401: the key is missing, wrong or revoked (revoked keys work 24 h, then fail)."""


class ScopeError(GrowthOSError):
    """403 insufficient_scope: the key is valid but lacks the scope an endpoint needs."""

    def __init__(
        self,
        *,
        required_scope: str | None,
        granted_scopes: list[str],
        path: str,
        method: str = "GET",
        code: str | None = "insufficient_scope",
        request_id: str | None = None,
        details: list[Any] | None = None,
    ) -> None:
        self.required_scope = required_scope
        self.granted_scopes = list(granted_scopes)
        self.path = path
        self.tables: tuple[str, ...] = ()  # the tables that need it (set by the source)
        needed = f"scope {required_scope}" if required_scope else "a scope (not named by the API)"
        granted = ", ".join(self.granted_scopes) or "none"
        message = (
            f"the API key lacks {needed} needed for {method} {path}: add the scope to the key, "
            "or leave the table out (--resources) or set on_missing_scope='skip' "
            f"(granted scopes: {granted})"
        )
        super().__init__(message, code=code, request_id=request_id, status=403, details=details)


class NotFoundError(GrowthOSError):
    """404: the resource does not exist (or base_url lacks the /v1 prefix)."""


class CursorExpiredError(GrowthOSError):
    """400 cursor_expired: restart the walk from a safe point; cursors are never reusable."""


class RateLimitError(GrowthOSError):
    """429 persisted after all retries."""


class ServerError(GrowthOSError):
    """5xx persisted after all retries (or a 5xx that is not worth retrying)."""


class ConnectionFailedError(GrowthOSError):
    """The host could not be reached or the connection kept failing."""


class MalformedResponseError(GrowthOSError):
    """A response that is not the JSON the API promises (not JSON, not an object, no data list)."""


class PaginationError(GrowthOSError):
    """The API's cursors stopped making progress (repeated cursor, endless empty pages)."""


class ApiError(GrowthOSError):
    """Any other refusal (400, 409, 410, 422, unexpected statuses, redirects)."""


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
