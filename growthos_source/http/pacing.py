"""Client-side pacing for the GrowthOS Management API.

The API limits requests per key (10/50/100 req/s by plan) and announces the limit on every
response with ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (unix
seconds). A 429 carries ``Retry-After``. Staying just under the limit is much cheaper than
collecting 429s and backing off, so every request of a client passes through one shared
:class:`RateLimiter` first.
"""

from __future__ import annotations

import email.utils
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["PacingStats", "RateLimiter", "parse_retry_after"]

# Waits announced through X-RateLimit-Reset beyond this are treated as clock skew, not as
# a real quota window (the documented windows are one second long).
MAX_RESET_WAIT = 60.0
# Our clock and the server's disagree by more than this: trust the server's Date header instead.
MAX_CLOCK_SKEW = 2.0


@dataclass(frozen=True)
class PacingStats:
    """Counters of one limiter: requests admitted, 429 pauses, seconds spent waiting."""

    requests: int
    pauses: int
    wait_seconds: float
    limit: float | None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Turn a ``Retry-After`` value (delta seconds or HTTP-date) into seconds to wait.

    ``now`` is the current unix time, used for the HTTP-date form. Returns None when the value
    is absent or unparseable, so callers fall back to their own backoff.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


def _number(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return float(raw.strip())
    except ValueError:
        return None


# The share of the plan's limit used, at most. The API counts requests in one-second windows
# when it processes them, so requests sent evenly still arrive bunched by latency and GIL jitter
# and an occasional 429 is expected; it holds every walk for the rest of its window. So the
# share adapts: a 429 lowers it by SAFETY_STEP (down to MIN_SAFETY), and every CALM_SECONDS
# without one raise it a step again, up to the limiter's `safety`. A network that bunches
# requests more than the local one settles a step or two lower instead of paying a 429 a second.
# The 429s of requests that went out before the share was last lowered answer the same crowded
# window: they lower it once, not once each (each step takes CALM_SECONDS to win back).
DEFAULT_SAFETY = 0.99
MIN_SAFETY = 0.95
SAFETY_STEP = 0.01
CALM_SECONDS = 30.0
# Requests in flight before the first response has announced the limit. The documented plans
# allow 10, 50 and 100 req/s, so half the lowest at once stays within any; they count in their
# second's share once the limit is known. One at a time cost a round trip before a backfill's
# opening requests (the newest event, the `to` probe, the count queries) could go out together.
DEFAULT_BURST = 5


def per_second(safety: float, limit: float) -> int:
    """Requests admitted per wall-clock second: as many slots as the even spacing puts into a
    second (rounded up: on the Free plan's 10 req/s, rounding 9.8 down cost a tenth of the
    plan's rate)."""
    return max(1, math.ceil(safety * limit - 1e-9))


class RateLimiter:
    """One shared request schedule for all threads of a client.

    ``acquire()`` hands each caller a start slot on a single timeline spaced
    ``1 / (share * limit)`` seconds apart (``share``: at most ``safety``, lowered by 429s, see
    DEFAULT_SAFETY); slots are computed under a lock and the waiting happens outside it, so
    many threads can pace concurrently without serialising their sleeps.
    ``limit`` is the smaller of ``max_requests_per_second`` and the latest
    ``X-RateLimit-Limit`` seen. Until the first response tells us the limit, only ``burst``
    requests may be in flight (see DEFAULT_BURST); if responses carry no rate-limit headers at
    all, pacing is off.
    ``clock``/``wall_clock``/``sleep`` are injectable for deterministic tests.
    """

    def __init__(
        self,
        max_requests_per_second: float | None = None,
        *,
        safety: float = DEFAULT_SAFETY,
        burst: int = DEFAULT_BURST,
        probe_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_requests_per_second is not None and not max_requests_per_second > 0:
            raise ValueError("max_requests_per_second must be > 0 (or None to learn it)")
        if not 0 < safety <= 1:
            raise ValueError("safety must be in (0, 1]")
        self._fixed = max_requests_per_second
        self._learned: float | None = None
        self._safety = safety
        self._share = safety  # what is used now: lowered by 429s, raised again when calm
        self._calm_since = clock()
        self._lowered_at = float("-inf")  # when a 429 last lowered the share
        self._burst = max(1, burst)
        self._probe_timeout = probe_timeout
        self._clock = clock
        self._wall = wall_clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._seen_response = False
        self._probes = 0
        self._next_slot = float("-inf")
        self._blocked_until = float("-inf")
        self._second = 0  # the wall-clock second being counted, and requests sent in it
        self._sent = 0
        self._requests = 0
        self._pauses = 0
        self._waited = 0.0

    @property
    def limit(self) -> float | None:
        """The request rate (req/s) the schedule is based on, before the safety factor."""
        with self._cond:
            return self._limit()

    def _limit(self) -> float | None:
        known = [x for x in (self._fixed, self._learned) if x is not None]
        return min(known) if known else None

    def acquire(self) -> float:
        """Block until this caller may send its request; return the seconds waited.

        Besides the even spacing, at most `share * limit` requests go out per wall-clock
        second (the API counts in one-second windows): a thread that wakes late, e.g. after
        another thread held the GIL, would otherwise push its request into the next window on
        top of that window's own share, and the API answers the excess with 429."""
        with self._cond:
            self._requests += 1
        waited = 0.0
        while True:
            delay, planned = self._wait_for_slot()
            waited += delay
            with self._cond:
                if self._admit_locked(planned):
                    return waited

    def _admit_locked(self, planned: float) -> bool:
        """Count the request in the wall-clock second it goes out in (its planned time, or now
        if it woke late); False (and a wait) if that second already has its share."""
        limit = self._limit()
        wall = max(self._wall(), planned)
        second = int(wall // 1)
        if second != self._second:
            self._second, self._sent = second, 0
        if limit is None or self._probing():
            self._sent += 1  # a probe: counted in its second once the limit is known
            return True
        if self._sent < per_second(self._current_share(), limit):
            self._sent += 1
            return True
        self._block_for(second + 1 - wall)  # this window is full: wait for the next one
        return False

    def _wait_for_slot(self) -> tuple[float, float]:
        waited = 0.0
        with self._cond:
            deadline = time.monotonic() + self._probe_timeout
            # Before any response we do not know the plan's limit: let `burst` probe requests
            # go and hold the others until a response (or a failed probe) tells us more.
            while self._probing() and self._probes >= self._burst:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                started = self._clock()
                self._cond.wait(timeout=remaining)
                waited += max(0.0, self._clock() - started)
            now = self._clock()
            slot = max(now, self._blocked_until)
            limit = self._limit()
            if self._probing():
                self._probes += 1
            elif limit is not None:
                slot = max(slot, self._next_slot)
                self._next_slot = slot + 1.0 / (self._current_share() * limit)
            delay = slot - now
            self._waited += waited + max(0.0, delay)
            planned = self._wall() + delay
        if delay > 0:
            self._sleep(delay)
        return waited + max(0.0, delay), planned

    def _current_share(self) -> float:
        """The share of the limit used now (see DEFAULT_SAFETY); `_cond` is held."""
        if self._share < self._safety and self._clock() - self._calm_since >= CALM_SECONDS:
            self._share = min(self._safety, self._share + SAFETY_STEP)
            self._calm_since = self._clock()
        return self._share

    @property
    def share(self) -> float:
        """The share of the announced limit the schedule uses now."""
        with self._cond:
            return self._current_share()

    def _probing(self) -> bool:
        return self._fixed is None and not self._seen_response

    def observe(self, headers: Mapping[str, str] | None) -> None:
        """Learn from a response's headers (None when the request got no response at all)."""
        with self._cond:
            if headers is None:
                # A failed probe frees its place so another caller can try.
                if self._probing() and self._probes > 0:
                    self._probes -= 1
                self._cond.notify_all()
                return
            lowered = {k.lower(): v for k, v in headers.items()}
            limit = _number(lowered, "x-ratelimit-limit")
            if limit is not None and limit > 0:
                self._learned = limit
            self._seen_response = True
            remaining = _number(lowered, "x-ratelimit-remaining")
            reset = _number(lowered, "x-ratelimit-reset")
            if remaining is not None and remaining <= 0 and reset is not None:
                wait = reset - self._server_now(lowered.get("date"))
                if wait > 0:
                    self._block_for(min(wait, MAX_RESET_WAIT))
            self._cond.notify_all()

    def _server_now(self, date_header: str | None) -> float:
        # X-RateLimit-Reset is the server's unix time; if our clock is badly off, the Date
        # header (1 s resolution) is a better "now" than the local wall clock.
        wall = self._wall()
        if date_header:
            try:
                server = email.utils.parsedate_to_datetime(date_header).timestamp()
            except (TypeError, ValueError, IndexError):
                return wall
            if abs(server - wall) > MAX_CLOCK_SKEW:
                return server
        return wall

    def seconds_until_reset(self, headers: Mapping[str, str]) -> float | None:
        """Seconds until the `X-RateLimit-Reset` of a response: 0 when it has passed (a 429
        counted at the very end of a window arrives after the next one began), None without
        the header or when it is more than MAX_RESET_WAIT seconds away."""
        lowered = {k.lower(): v for k, v in headers.items()}
        reset = _number(lowered, "x-ratelimit-reset")
        if reset is None:
            return None
        wait = reset - self._server_now(lowered.get("date"))
        return max(0.0, wait) if wait <= MAX_RESET_WAIT else None

    def now(self) -> float:
        """The limiter's clock: what `pause`'s `sent_at` is measured in."""
        return self._clock()

    def pause(self, seconds: float, sent_at: float | None = None) -> None:
        """Hold every caller for ``seconds`` (after a 429) and count the 429. It lowers the
        share a step unless its request went out (``sent_at``, from `now()` after `acquire()`)
        before an earlier 429 lowered it: then both answer the same crowded window."""
        with self._cond:
            self._pauses += 1
            self._block_for(seconds)
            now = self._clock()
            if sent_at is None or sent_at >= self._lowered_at:
                self._share = max(min(MIN_SAFETY, self._safety), self._share - SAFETY_STEP)
                self._lowered_at = now
            self._calm_since = now

    def _block_for(self, seconds: float) -> None:
        self._blocked_until = max(self._blocked_until, self._clock() + max(0.0, seconds))

    def stats(self) -> PacingStats:
        """Snapshot of the counters."""
        with self._cond:
            return PacingStats(self._requests, self._pauses, self._waited, self._limit())
