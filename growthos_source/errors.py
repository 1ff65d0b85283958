"""Typed errors of the GrowthOS connector.

Every error renders as ONE line saying what is wrong and how to fix it, followed by
``(code=..., request_id=...)`` when the API supplied them, so a failed pipeline run tells the
user what to do without digging through a traceback (http/responses.py turns the API's error
responses into these types). No error ever carries the API key: texts taken from responses are
scrubbed of anything that looks like a GrowthOS key or bearer token.
"""

from __future__ import annotations

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
    "redact",
]

API_KEY_HINT = "check sources.growthos.api_key / SOURCES__GROWTHOS__API_KEY"
# Secret keys are gos_sk_..., write keys gos_wk_...; also catch any echoed "Bearer <token>".
_SECRET_RE = re.compile(r"gos_[a-z]{2}_[A-Za-z0-9_\-]+|(?i:bearer)\s+\S+")


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
