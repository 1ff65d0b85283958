"""The retry policy: which failed attempts are worth another one, and how long to wait first.

One object decides both, so the statuses that are retried and the waits between attempts can
not drift apart. 429, 408 and 500/502/503/504, timeouts, connection failures and unparseable
2xx bodies are transient; every other 4xx (400 incl. cursor_expired, 401, 403, 404, 409, 410,
422), other 5xx and 3xx are final. Non-idempotent requests are only retried when the API cannot
have acted on them (429, connect failures). Between attempts the wait is full jitter,
`uniform(0, min(backoff_max, backoff_base * 2**(attempt-1)))`, or longer when a 429/503 says
so with `Retry-After`; a Retry-After over `max_retry_after` means "come back later", not
"retry now", and ends the request at once.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from .decode import BodyNotJSON
from .pacing import parse_retry_after

__all__ = ["IDEMPOTENT_METHODS", "MAX_RETRY_AFTER", "RETRIABLE_STATUSES", "RetryPolicy",
           "Verdict"]

RETRIABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Failures where the request certainly never reached the API, so even a write may be resent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError,
              httpx.ProxyError, httpx.DecodingError, BodyNotJSON)
MAX_RETRY_AFTER = 300.0


class Verdict(enum.Enum):
    """Outcome of one attempt: done, worth another attempt, or final failure."""

    OK = "ok"
    RETRY = "retry"
    FATAL = "fatal"


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a request gets, which outcomes are retried and the waits between.

    `jitter(a, b)` draws the random part of a wait (injectable for tests), `wall_clock` is the
    unix time the HTTP-date form of Retry-After is read against.
    """

    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = MAX_RETRY_AFTER
    jitter: Callable[[float, float], float] = field(default=random.uniform, compare=False)
    wall_clock: Callable[[], float] = field(default=time.time, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("max_attempts must be >= 1 and backoff values >= 0")

    def verdict(self, status: int | None, error: BaseException | None = None, *,
                idempotent: bool = True) -> Verdict:
        """Whether an attempt (its status, or the exception it raised) succeeded, may be
        retried, or failed for good."""
        if error is not None:
            if isinstance(error, _NOT_SENT):
                return Verdict.RETRY
            return Verdict.RETRY if idempotent and isinstance(error, _TRANSIENT) else Verdict.FATAL
        if status is None:
            return Verdict.FATAL
        if 200 <= status < 300:
            return Verdict.OK
        if status == 429 or (idempotent and status in RETRIABLE_STATUSES):
            return Verdict.RETRY
        return Verdict.FATAL

    def gives_up(self, verdict: Verdict, attempt: int) -> bool:
        """True when a failed attempt number `attempt` (from 1) ends the request."""
        return verdict is Verdict.FATAL or attempt >= self.max_attempts

    def asked(self, status: int | None, headers: Mapping[str, str] | None) -> float | None:
        """The wait a 429/503 asks for with Retry-After, in seconds (None: not asked)."""
        if headers is None or status not in (429, 503):
            return None
        return parse_retry_after(headers.get("retry-after"), self.wall_clock())

    def wait(self, attempt: int, status: int | None,
             headers: Mapping[str, str] | None) -> float | None:
        """Seconds to wait after failed attempt `attempt` before the next one; None when the
        API asks for more than `max_retry_after` (give up now)."""
        delay = self.jitter(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))
        wanted = self.asked(status, headers)
        if wanted is not None and wanted > self.max_retry_after:
            return None
        return max(delay, wanted or 0.0)
