"""HTTP client for the GrowthOS Management API: one call with auth, pacing and retries.

Where requests may go is checked in target.py, what is retried and how long to wait in
retry.py, the pacing in pacing.py, cursor pagination in pagination.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Self

import httpx

from .. import tally
from ..errors import (
    ApiError,
    ConfigurationError,
    ConnectionFailedError,
    GrowthOSError,
    MalformedResponseError,
    redact,
)
from .concurrency import ConcurrencyLimit, Places
from .decode import BodyNotJSON, as_object, decode
from .pacing import RateLimiter
from .pagination import Page, paginate
from .responses import error_from_response
from .retry import IDEMPOTENT_METHODS, RetryPolicy, Verdict
from .sending import Sender
from .target import Secret, Target, clean_key, safe_params, validate_base_url

__all__ = ["ClientStats", "GrowthOSClient"]

logger = logging.getLogger("growthos_source")

# The most walks (and connections) a client keeps in flight unless configured otherwise:
# Little's law asks for 45 at a Scale key's 100 req/s 300 ms away (concurrency.py).
MAX_CONCURRENCY = 64


@dataclass(frozen=True)
class ClientStats:
    """Counters of a client: attempts actually sent, 429s received, retries, and seconds spent
    waiting for the pacing schedule (429 pauses included) or sleeping before other retries."""

    requests_sent: int
    throttled: int
    retries: int
    pacing_wait_seconds: float
    retry_wait_seconds: float


def _tries(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


class GrowthOSClient:
    """Thread-safe client: one pooled httpx connection set, one shared pacing schedule."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_requests_per_second: float | None = None,
        user_agent: str = "growthos-dlt/0.1",
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rate_limiter: RateLimiter | None = None,
        max_concurrency: int = MAX_CONCURRENCY,
    ) -> None:
        self._target = Target(validate_base_url(base_url))
        self.base_url = str(self._target.base)
        self._key = Secret(clean_key(api_key))
        if timeout <= 0 or max_attempts < 1 or backoff_base < 0 or backoff_max < 0:
            raise ConfigurationError(
                "timeout must be > 0, max_attempts >= 1 and backoff values >= 0"
            )
        if max_requests_per_second is not None and max_requests_per_second <= 0:
            raise ConfigurationError("max_requests_per_second must be > 0, or unset to learn it")
        if max_concurrency < 1:
            raise ConfigurationError("workers (the most concurrent walks) must be >= 1")
        self.retry = RetryPolicy(max_attempts, backoff_base, backoff_max)
        self._sleep = sleep
        self._timeout = httpx.Timeout(timeout)
        self._limiter = rate_limiter or RateLimiter(max_requests_per_second, sleep=sleep)
        # How many walks should run at once, from the paced rate and the request times, and
        # the places they take: one budget for every resource and thread (concurrency.py).
        limiter = self._limiter
        self.concurrency = ConcurrencyLimit(max_concurrency, rate=lambda: limiter.limit)
        self.places = Places(self.concurrency_limit)
        self._lock = threading.Lock()
        self._thread = threading.local()  # when this thread's last call returned
        self._sent = 0
        self._retries = 0
        self._retry_wait = 0.0
        self._throttled = 0
        self._http = Sender({"User-Agent": user_agent, "Accept": "application/json"},
                            self._timeout, max_concurrency, transport,
                            tls=self._target.base.scheme != "http")

    def __repr__(self) -> str:
        return f"GrowthOSClient(base_url={self.base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def concurrency_limit(self) -> int:
        """How many walks should advance at once (concurrency.py)."""
        return self.concurrency.limit

    @property
    def stats(self) -> ClientStats:
        """Snapshot of the request, 429, retry and waiting counters."""
        pacing = self._limiter.stats()
        with self._lock:
            return ClientStats(self._sent, self._throttled, self._retries,
                               pacing.wait_seconds, self._retry_wait)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """Send one API call with pacing and retries; return the decoded JSON object.

        ``path`` is relative to base_url ("/contacts"). ``None`` params are dropped (httpx
        would send them as empty strings, which the API rejects). ``idempotent`` defaults by
        method; pass True for read-only POSTs such as /analytics/query so they are retried.
        """
        return self._call(method, path, params, json, idempotent)[0]

    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, *, page_size: int = 100
    ) -> Iterator[Page]:
        """Walk a cursor-paginated list endpoint page by page.

        Sends ``limit`` and the previous page's ``next_cursor`` as ``cursor`` (always to our
        own host, even if a cursor looks like a URL). Stops when ``has_more`` is false or
        ``next_cursor`` is null. Raises CursorExpiredError (the caller knows the safe restart
        point) and PaginationError if the cursors stop making progress.
        """
        return paginate(lambda p, q: self._call("GET", p, q, None, None), path, params,
                        page_size=page_size)

    def _call(self, method: str, path: str, params: Mapping[str, Any] | None, json: Any,
              idempotent: bool | None) -> tuple[dict[str, Any], bytes | None]:
        """`request`, also returning the response body if orjson decoded it as it is (see
        decode.py; None otherwise)."""
        method = method.upper()
        url, rel = self._target.url_for(path)
        where = f"{method} {rel}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if any(self._key.value in str(v) for v in query.values()):
            raise ConfigurationError("the API key must never be sent as a query parameter")
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        headers = {"Authorization": f"Bearer {self._key.value}"}
        # What a walk spends between two calls (its rows checked, handed over) is part of its
        # cycle; counted up to the request's own time, since a longer gap is a walk waiting
        # for work or for a place, not working.
        gap = max(0.0, time.perf_counter() - getattr(self._thread, "done", float("inf")))
        attempt = 0
        while True:
            attempt += 1
            waited = self._limiter.acquire()
            sent_at = self._limiter.now()
            with self._lock:
                self._sent += 1
            tally.count(rel, requests=1, waited=waited)  # the run ledger's per-table counts
            response: httpx.Response | None = None
            problem: BaseException | None = None
            body: Any = None
            plain = False
            reason = ""
            try:
                started = time.perf_counter()
                response = self._http.send(method, url, query, json, headers)
                exchanged = time.perf_counter()
                body, plain = decode(response)
                if 200 <= response.status_code < 300:
                    service = time.perf_counter() - started
                    self.concurrency.observe(exchanged - started, service + min(gap, service))
            except (httpx.RequestError, BodyNotJSON) as exc:
                problem, reason = exc, redact(str(exc) or type(exc).__name__, (self._key.value,))
            finally:  # always report back, or threads waiting for the first answer would stall
                self._limiter.observe(response.headers if response is not None else None)
            status = response.status_code if response is not None else None
            if status == 429:
                with self._lock:
                    self._throttled += 1
                tally.count(rel, throttled=1)
            verdict = self.retry.verdict(status, problem, idempotent=safe)
            logger.debug("%s params=%s -> %s (attempt %d)", where, safe_params(query),
                         status if problem is None else reason, attempt)
            if verdict is Verdict.OK and problem is None and response is not None:
                self._thread.done = time.perf_counter()
                return as_object(body, response, where), response.content if plain else None
            if response is not None and problem is None:
                last = self._error_for(response, rel, method, attempt)
            else:
                last = self._transport_error(problem, reason, where, attempt)
            if self.retry.gives_up(verdict, attempt):
                raise last
            self._wait_before_retry(response, where, attempt, last, sent_at)

    def _error_for(self, response: httpx.Response, rel: str, method: str, attempt: int
                   ) -> GrowthOSError:
        status = response.status_code
        if 300 <= status < 400:
            loc = httpx.URL(response.headers.get("location", ""))
            target = f"{loc.scheme}://{loc.host}{loc.path}" if loc.host else loc.path or "?"
            return ApiError(
                f"{method} {rel} was redirected ({status}) to {redact(target)}; redirects are "
                "not followed so the API key stays on the configured host: set base_url to "
                "the final API URL", status=status)
        err = error_from_response(status, response.content, rel, method=method,
                                  attempts=attempt if attempt > 1 else None)
        err.scrub(self._key.value)
        if status in (401, 403) and self._key.value.startswith("gos_wk_"):
            err.add_hint("gos_wk_ write keys cannot read: use a gos_sk_ secret key")
        return err

    def _transport_error(self, problem: BaseException | None, reason: str, where: str,
                         attempt: int) -> GrowthOSError:
        if isinstance(problem, BodyNotJSON):
            return MalformedResponseError(
                f"{where} kept returning {problem} ({_tries(attempt)}): check that base_url "
                "points at the GrowthOS API (…/v1) and the network path (proxies)")
        return ConnectionFailedError(
            f"cannot reach {self._target.base.host}: {reason} ({where}, {_tries(attempt)}); "
            "check base_url and network")

    def _wait_before_retry(self, response: httpx.Response | None, where: str, attempt: int,
                           err: GrowthOSError, sent_at: float) -> None:
        status = response.status_code if response is not None else None
        headers = response.headers if response is not None else None
        delay = self.retry.wait(attempt, status, headers)
        if delay is None:
            err.add_hint(f"the API asked to wait {self.retry.asked(status, headers):.0f}s "
                         "before retrying")
            raise err
        with self._lock:
            self._retries += 1
        tally.count(where.split(" ", 1)[1], retries=1)
        logger.warning("%s failed (%s), retry %d/%d in %.2fs (request_id=%s)", where,
                       status or type(err).__name__, attempt, self.retry.max_attempts - 1, delay,
                       err.request_id)
        if status == 429:
            # The limit is per key: hold every thread of this client, not only this one, until
            # the quota window resets (X-RateLimit-Reset; Retry-After when absent). Only the
            # rejected request waits out the whole Retry-After, which the API rounds up to
            # whole seconds.
            assert response is not None
            reset = self._limiter.seconds_until_reset(response.headers)
            everyone = delay if reset is None else min(delay, reset)
            self._limiter.pause(everyone, sent_at)
            if delay > everyone:
                self._sleep(delay)  # from now, like the pause: at least Retry-After in all
                tally.count(where.split(" ", 1)[1], waited=delay - everyone)
            return
        with self._lock:
            self._retry_wait += delay
        self._sleep(delay)
