"""HTTP client for the GrowthOS Management API: auth, retries, pacing and cursor pagination.

The bearer key only ever travels to the configured origin: redirects are not followed and
cursors are sent as query parameters to our own host, never requested as URLs (dlt's generic
REST client forwards the token to absolute ``next`` URLs on any host; this one cannot).
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import httpx
import orjson

from . import tally, values
from .concurrency import ConcurrencyLimit
from .errors import (
    API_KEY_HINT,
    ApiError,
    ConfigurationError,
    ConnectionFailedError,
    GrowthOSError,
    MalformedResponseError,
    PaginationError,
    error_from_response,
    redact,
)
from .pacing import RateLimiter, parse_retry_after
from .sending import Sender

__all__ = ["ClientStats", "GrowthOSClient", "Page", "Verdict", "classify", "quote_path_segment"]

logger = logging.getLogger("growthos_source")

RETRIABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Failures where the request certainly never reached the API, so even a write may be resent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
MAX_RETRY_AFTER = 300.0  # a longer Retry-After means "come back later", not "retry now"
MAX_EMPTY_PAGES = 50
MAX_CONNECTIONS = 16
_SECRET_PARAM_WORDS = ("key", "token", "secret", "password", "auth")


class Verdict(enum.Enum):
    """Outcome of one attempt: done, worth another attempt, or final failure."""

    OK = "ok"
    RETRY = "retry"
    FATAL = "fatal"


class _BodyNotJSON(Exception):
    """A 2xx whose body does not parse: usually a connection cut mid-body."""


def classify(
    status: int | None, error: BaseException | None = None, *, idempotent: bool = True
) -> Verdict:
    """Decide whether an attempt succeeded, may be retried, or failed for good.

    The single place encoding the retry policy: 429, 408 and 500/502/503/504, timeouts,
    connection failures and unparseable 2xx bodies are transient; every other 4xx (400 incl.
    cursor_expired, 401, 403, 404, 409, 410, 422), other 5xx and 3xx are final. Non-idempotent
    requests are only retried when the API cannot have acted on them (429, connect failures).
    """
    if error is not None:
        if isinstance(error, _NOT_SENT):
            return Verdict.RETRY
        transient = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError,
                     httpx.ProxyError, httpx.DecodingError, _BodyNotJSON)
        return Verdict.RETRY if idempotent and isinstance(error, transient) else Verdict.FATAL
    if status is None:
        return Verdict.FATAL
    if 200 <= status < 300:
        return Verdict.OK
    if status == 429 or (idempotent and status in RETRIABLE_STATUSES):
        return Verdict.RETRY
    return Verdict.FATAL


@dataclass(frozen=True)
class Page:
    """One page of a list endpoint: its rows, other top-level fields, its request id, and the
    response body as received (arrowize.py can parse it again outside the GIL)."""

    data: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    body: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ClientStats:
    """Counters of a client: attempts actually sent, 429s received, retries, and seconds spent
    waiting for the pacing schedule (429 pauses included) or sleeping before other retries."""

    requests_sent: int
    throttled: int
    retries: int
    pacing_wait_seconds: float
    retry_wait_seconds: float


class _Secret:
    """Holds the key so that repr() of the client or of vars(client) never shows it."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


def _tries(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def quote_path_segment(value: str) -> str:
    """Percent-encode an opaque id for use as one path segment ("/" and "?" included)."""
    return urllib.parse.quote(str(value), safe="")


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    default = 443 if url.scheme == "https" else 80
    return (url.scheme, url.host, url.port or default)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate_base_url(base_url: str) -> httpx.URL:
    fix = "set sources.growthos.base_url to e.g. https://api.growthos.io/v1"
    shown = redact(str(base_url).split("?")[0].split("#")[0])
    try:
        url = httpx.URL(str(base_url).strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ConfigurationError(f"base_url {shown!r} is not a valid URL: {fix}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"base_url {shown!r} is not an http(s) URL with a host: {fix}")
    if url.userinfo or url.query or url.fragment:
        raise ConfigurationError(
            "base_url must not contain credentials, a query or a fragment (the key goes in "
            f"sources.growthos.api_key): {fix}"
        )
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ConfigurationError(
            f"base_url {shown!r} uses plain http to a non-local host, which would expose the "
            f"API key: use https ({fix})"
        )
    return url.copy_with(path=url.path.rstrip("/") or "/")


def _clean_key(api_key: str | None) -> str:
    key = (api_key or "").strip()
    if key[:7].lower() == "bearer ":
        key = key[7:].strip()
    if not key:
        raise ConfigurationError(f"no GrowthOS API key configured: {API_KEY_HINT}")
    if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise ConfigurationError(
            f"the API key contains spaces, control or non-ASCII characters: {API_KEY_HINT}"
        )
    return key


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
    ) -> None:
        self._base = _validate_base_url(base_url)
        self.base_url = str(self._base)
        self._key = _Secret(_clean_key(api_key))
        if timeout <= 0 or max_attempts < 1 or backoff_base < 0 or backoff_max < 0:
            raise ConfigurationError(
                "timeout must be > 0, max_attempts >= 1 and backoff values >= 0"
            )
        if max_requests_per_second is not None and max_requests_per_second <= 0:
            raise ConfigurationError("max_requests_per_second must be > 0, or unset to learn it")
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._timeout = httpx.Timeout(timeout)
        self._limiter = rate_limiter or RateLimiter(max_requests_per_second, sleep=sleep)
        # How many walks should run at once (concurrency.py); fanout.py asks.
        self.concurrency = ConcurrencyLimit(MAX_CONNECTIONS)
        self._lock = threading.Lock()
        self._sent = 0
        self._retries = 0
        self._retry_wait = 0.0
        self._throttled = 0
        self._http = Sender({"User-Agent": user_agent, "Accept": "application/json"},
                            self._timeout, MAX_CONNECTIONS, transport)

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
        """How many walks should advance at once, learnt from latencies (concurrency.py)."""
        return self.concurrency.limit

    @property
    def stats(self) -> ClientStats:
        """Snapshot of the request, 429, retry and waiting counters."""
        pacing = self._limiter.stats()
        with self._lock:
            return ClientStats(self._sent, self._throttled, self._retries,
                               pacing.wait_seconds, self._retry_wait)

    def _url_for(self, path: str) -> tuple[httpx.URL, str]:
        if "://" in path or path.startswith("//"):
            url = httpx.URL(path)
            if _origin(url) != _origin(self._base):
                raise ConfigurationError(
                    f"refusing to send the API key to {url.scheme}://{url.host}: only "
                    f"{self._base.scheme}://{self._base.host} is configured"
                )
            return url, url.path
        if "?" in path or "#" in path:
            raise ConfigurationError(f"path {path!r} must not contain '?' or '#': use params")
        rel = "/" + path.lstrip("/")
        return self._base.copy_with(path=self._base.path.rstrip("/") + rel), rel

    def _safe_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: "***" if any(w in k.lower() for w in _SECRET_PARAM_WORDS) else v
                for k, v in params.items()}

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

    def _call(self, method: str, path: str, params: Mapping[str, Any] | None, json: Any,
              idempotent: bool | None) -> tuple[dict[str, Any], bytes]:
        """`request`, also returning the response body it decoded."""
        method = method.upper()
        url, rel = self._url_for(path)
        where = f"{method} {rel}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if any(self._key.value in str(v) for v in query.values()):
            raise ConfigurationError("the API key must never be sent as a query parameter")
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        headers = {"Authorization": f"Bearer {self._key.value}"}
        last: GrowthOSError | None = None
        for attempt in range(1, self._max_attempts + 1):
            waited = self._limiter.acquire()
            with self._lock:
                self._sent += 1
            tally.count(rel, requests=1, waited=waited)  # the run ledger's per-table counts
            response: httpx.Response | None = None
            problem: BaseException | None = None
            body: Any = None
            reason = ""
            try:
                started = time.perf_counter()
                response = self._http.send(method, url, query, json, headers)
                if 200 <= response.status_code < 300:
                    self.concurrency.observe(time.perf_counter() - started)
                body = self._decode(response)
            except (httpx.RequestError, _BodyNotJSON) as exc:
                problem, reason = exc, redact(str(exc) or type(exc).__name__, (self._key.value,))
            finally:  # always report back, or threads waiting for the first answer would stall
                self._limiter.observe(response.headers if response is not None else None)
            status = response.status_code if response is not None else None
            if status == 429:
                with self._lock:
                    self._throttled += 1
                tally.count(rel, throttled=1)
            verdict = classify(status, problem, idempotent=safe)
            logger.debug("%s params=%s -> %s (attempt %d)", where, self._safe_params(query),
                         status if problem is None else reason, attempt)
            if verdict is Verdict.OK and problem is None and response is not None:
                return self._as_object(body, response, where), response.content
            if response is not None and problem is None:
                last = self._error_for(response, rel, method, attempt)
            else:
                last = self._transport_error(problem, reason, where, attempt)
            if verdict is Verdict.FATAL or attempt == self._max_attempts:
                raise last
            self._wait_before_retry(response, where, attempt, last)
        raise AssertionError("unreachable")  # pragma: no cover

    def _decode(self, response: httpx.Response) -> Any:
        if not 200 <= response.status_code < 300:
            return None
        if response.status_code == 204 or not response.content:
            return {}
        try:
            if values.needs_exact_parse(response.content):
                # orjson would round long numbers: the exact parse keeps them (values.py)
                return values.exact_json(response.content)
            # orjson parses the event stream's pages ~30% faster; it refuses what json accepts
            # beyond strict UTF-8 JSON (NaN, integers over 64 bits, other charsets).
            return orjson.loads(response.content)
        except ValueError:
            pass
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError):
            # A cut-off body and a proxy's HTML maintenance page are both usually transient;
            # a base_url that points at a website fails the same way after the last attempt.
            ctype = response.headers.get("content-type", "") or "no content type"
            raise _BodyNotJSON(f"a body that is not valid JSON ({ctype})") from None

    def _as_object(self, body: Any, response: httpx.Response, where: str) -> dict[str, Any]:
        if isinstance(body, dict):
            return body
        raise MalformedResponseError(
            f"{where} returned JSON that is not an object (status {response.status_code}): "
            "check that base_url "
            "points at the GrowthOS API (…/v1)", status=response.status_code)

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
        if isinstance(problem, _BodyNotJSON):
            return MalformedResponseError(
                f"{where} kept returning {problem} ({_tries(attempt)}): check that base_url "
                "points at the GrowthOS API (…/v1) and the network path (proxies)")
        return ConnectionFailedError(
            f"cannot reach {self._base.host}: {reason} ({where}, {_tries(attempt)}); "
            "check base_url and network")

    def _wait_before_retry(self, response: httpx.Response | None, where: str, attempt: int,
                           err: GrowthOSError) -> None:
        delay = random.uniform(0, min(self._backoff_max, self._backoff_base * 2 ** (attempt - 1)))
        status = response.status_code if response is not None else None
        if response is not None and status in (429, 503):
            wanted = parse_retry_after(response.headers.get("retry-after"), time.time())
            if wanted is not None and wanted > MAX_RETRY_AFTER:
                err.add_hint(f"the API asked to wait {wanted:.0f}s before retrying")
                raise err
            delay = max(delay, wanted or 0.0)
        with self._lock:
            self._retries += 1
        tally.count(where.split(" ", 1)[1], retries=1)
        logger.warning("%s failed (%s), retry %d/%d in %.2fs (request_id=%s)", where,
                       status or type(err).__name__, attempt, self._max_attempts - 1, delay,
                       err.request_id)
        if status == 429:
            # The limit is per key: hold every thread of this client, not only this one, until
            # the quota window resets (X-RateLimit-Reset; Retry-After when absent). Only the
            # rejected request waits out the whole Retry-After, which the API rounds up to
            # whole seconds.
            assert response is not None
            reset = self._limiter.seconds_until_reset(response.headers)
            everyone = delay if reset is None else min(delay, reset)
            self._limiter.pause(everyone)
            if delay > everyone:
                self._sleep(delay)  # from now, like the pause: at least Retry-After in all
                tally.count(where.split(" ", 1)[1], waited=delay - everyone)
            return
        with self._lock:
            self._retry_wait += delay
        self._sleep(delay)

    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, *, page_size: int = 100
    ) -> Iterator[Page]:
        """Walk a cursor-paginated list endpoint page by page.

        Sends ``limit`` and the previous page's ``next_cursor`` as ``cursor`` (always to our
        own host, even if a cursor looks like a URL). Stops when ``has_more`` is false or
        ``next_cursor`` is null. Raises CursorExpiredError (the caller knows the safe restart
        point) and PaginationError if the cursors stop making progress.
        """
        if not 1 <= page_size <= 100:
            raise ConfigurationError(f"page_size must be 1..100 (the API maximum), got {page_size}")
        query = dict(params or {})
        query["limit"] = page_size
        used: set[str] = {query["cursor"]} if isinstance(query.get("cursor"), str) else set()
        empty_streak = 0
        while True:
            body, content = self._call("GET", path, query, None, None)
            data = body.get("data")
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise MalformedResponseError(
                    f"GET {path} returned a page without a 'data' list of objects: check that "
                    "base_url points at the GrowthOS API")
            raw_rid = body.get("request_id")
            rid = raw_rid if isinstance(raw_rid, str) else None
            cursor = body.get("next_cursor")
            has_more = body.get("has_more", bool(cursor))
            if not isinstance(has_more, bool) or not isinstance(cursor, (str, type(None))):
                raise MalformedResponseError(
                    f"GET {path} returned a page whose has_more/next_cursor are not bool/string",
                    request_id=rid)
            extra = {k: v for k, v in body.items()
                     if k not in ("data", "has_more", "next_cursor", "request_id")}
            yield Page(data=data, extra=extra, request_id=rid, body=content)
            if not has_more or not cursor:
                if has_more:
                    logger.warning("GET %s: has_more is true but next_cursor is empty; stopping",
                                   path)
                return
            if cursor in used:
                raise PaginationError(
                    f"GET {path} returned a next_cursor already used in this walk (the API is "
                    "looping): stopping; report the request_id to GrowthOS", request_id=rid)
            empty_streak = empty_streak + 1 if not data else 0
            if empty_streak > MAX_EMPTY_PAGES:
                raise PaginationError(
                    f"GET {path} returned {empty_streak} empty pages in a row with has_more "
                    "true: stopping; report the request_id to GrowthOS", request_id=rid)
            used.add(cursor)
            query["cursor"] = cursor
