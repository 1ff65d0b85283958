"""How many walks a client keeps in flight, and the one budget of places they share.

With a rate limit (the announced X-RateLimit-Limit, or max_requests_per_second) the number
follows Little's law: requests in flight = rate x time a request takes. A walk is one cursor
chain, so it has one request in flight at a time; to keep a Scale key's 100 req/s busy at 200
ms a request it takes 20 walks, at 50 ms 5, and on the Free plan (10 req/s) one walk at 50 ms
already reads twice as fast as the key may. The need is sized with a margin (MARGIN) for jitter
and for the time a walk spends between two requests, from the median of recent request times,
and bounded by the configured maximum (`workers`).

Without a known rate (an API that announces no limit) concurrency pays only while the API is
slow to answer; when it answers at once the walks only wait for each other, for the server and
here for the interpreter lock (measured unthrottled on 2 cores: 16 walks in flight took ~10%
longer than 2, and their requests 32 ms instead of 2.5 ms). So then the limit follows latency,
as TCP Vegas does: it starts small (START) and doubles while requests answer about as fast as
the fastest recent ones (TCP's slow start: a distant API gets its dozens of walks within a few
round trips); once they take clearly longer, requests are queueing somewhere, and from then on
it shrinks by a quarter when they queue and grows by one when they do not.

A rate that even `workers` walks cannot reach sizes nothing, so then too the limit is learnt
from latency: an API may announce a limit far above what it or this client can serve (an
"unlimited" key answering with a limit of 1,000,000 asked for all 64 walks at once, each request
waiting ~150 ms for its turn where one alone took 2 ms). A rate the walks can reach is never
second-guessed by latency: a page that takes longer than a probe is not a queue, and holding
the walks below what the rate needs would leave the plan unused.

While latency sizes the limit, `width` (the workers a fan-out starts) is the maximum, so the
limit may grow up to it within one fan-out: a worker takes or splits work only once it holds a
place (fanout.py). Windows and probes are planned for the limit, the walks in flight now.

Only the HTTP exchange is timed for the latency-learnt limit; the rate-based one takes a walk's
cycle: the exchange, the decoding of its body and what the walk did since its previous request
(up to as long again), not pacing, not retries. Only successful answers count. `Places` is the budget: one per client, shared by every walk of
every resource and every dlt extract worker, so the limit holds for the client as a whole.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import deque
from collections.abc import Callable

__all__ = ["ConcurrencyLimit", "Places", "walks_needed"]

# Walks per request in flight that Little's law asks for: a walk also spends time between two
# requests (its rows checked, handed over), and latency varies.
MARGIN = 1.5
# One walk is enough while it would need at most this share of its time to keep the rate busy:
# a single walk needs no windows, no partial pages but its last and no search for where history
# starts, which on the Free plan (10 req/s) costs more than the margin would gain.
ONE_WALK = 0.8
# Request times the rate-based size is taken from (their median).
RECENT = 64
# The latency-learnt limit starts here (or at the maximum, if lower), doubling from it.
START = 4
# A typical latency above TOLERANCE x the recent minimum (+ SLACK, for jitter at
# sub-millisecond latencies) means requests are queueing.
TOLERANCE = 2.0
SLACK = 0.002
DECREASE = 0.75
# ...but never below two in flight: with one, the API idles while the client reads each answer,
# and the client idles while the API makes the next. The exchange time includes waiting for
# this interpreter, so on loopback two in flight already look like a queue, and the limit kept
# dipping to one (docs/performance.md). TCP Vegas keeps a floor of two for the same reason.
FLOOR = 2
# The minimum latency is that of the last HISTORY revisions, so it follows a slower network.
HISTORY = 20
MIN_SAMPLES = 4


def walks_needed(rate: float, seconds: float, minimum: int, maximum: int) -> int:
    """Walks that keep `rate` requests/s going when one request takes `seconds` (Little's
    law, with MARGIN; one while that is at most ONE_WALK), within [minimum, maximum]."""
    busy = rate * seconds
    need = 1 if busy <= ONE_WALK else math.ceil(busy * MARGIN - 1e-9)
    return max(minimum, min(maximum, need))


class ConcurrencyLimit:
    """A concurrency limit between `minimum` and `maximum`.

    `rate()` is the request rate the client is paced at (None while unknown or unlimited):
    with it, the limit is `walks_needed` of the recent request times; without it, or with one
    that needs at least `maximum` walks, it is learnt from latencies as described in the
    module docstring, from min(maximum, START).
    """

    def __init__(self, maximum: int, minimum: int = 1,
                 rate: Callable[[], float | None] | None = None) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError("need 1 <= minimum <= maximum")
        self.minimum, self.maximum = minimum, maximum
        self._floor = float(min(maximum, max(minimum, FLOOR)))  # of the latency-learnt limit
        self._rate = rate
        # The latency-learnt limit; None until a revision sets it (or while the rate sizes
        # the walks).
        self._learnt: float | None = None
        self._slow_start = True  # doubling, until requests first queue
        self._lock = threading.Lock()
        self._samples: list[float] = []
        self._mins: deque[float] = deque(maxlen=HISTORY)
        self._recent: deque[float] = deque(maxlen=RECENT)

    @property
    def limit(self) -> int:
        """How many walks may advance at once now (the places of `Places`)."""
        rate = self._rate() if self._rate is not None else None
        with self._lock:
            return self._sized_locked(rate)[0]

    @property
    def width(self) -> int:
        """How many walks a reader should start: the limit while the rate sizes it, else the
        maximum, which the latency-learnt limit may grow to (walks above it park)."""
        rate = self._rate() if self._rate is not None else None
        with self._lock:
            limit, learning = self._sized_locked(rate)
            if not learning or (rate and not self._recent):
                return limit  # sized by the rate, or soon: its first answers will tell
            return self.maximum

    def _sized_locked(self, rate: float | None) -> tuple[int, bool]:
        """(the limit, whether latency sizes it): the rate's need while the walks can reach the
        rate, else the latency-learnt limit (from START)."""
        if rate and self._recent:
            need = walks_needed(rate, statistics.median(self._recent), self.minimum,
                                self.maximum)
            if need < self.maximum:
                return need, False
        if self._learnt is None:
            return max(self.minimum, min(self.maximum, START)), True
        return int(self._learnt), True

    @property
    def cycle(self) -> float | None:
        """The median of the recent request cycles (seconds), None before the first."""
        with self._lock:
            return statistics.median(self._recent) if self._recent else None

    def observe(self, seconds: float, service: float | None = None) -> None:
        """Record the time of one successful exchange (`service`: the walk's cycle around it,
        what the rate-based size uses); revise the latency-learnt limit every
        `max(MIN_SAMPLES, limit)` of them."""
        rate = self._rate() if self._rate is not None else None
        with self._lock:
            self._recent.append(seconds if service is None else service)
            self._samples.append(seconds)
            current, learning = self._sized_locked(rate)
            if len(self._samples) >= max(MIN_SAMPLES, current):
                self._revise(current, learning)

    def _revise(self, current: int, learning: bool) -> None:
        samples, self._samples = sorted(self._samples), []
        self._mins.append(samples[0])
        if not learning:  # the rate sizes the walks; what latency taught so far is stale
            self._learnt, self._slow_start = None, True
            return
        typical = samples[len(samples) // 2]
        if typical > min(self._mins) * TOLERANCE + SLACK:
            self._learnt = max(self._floor, current * DECREASE)
            self._slow_start = False
        else:
            grown = current * 2.0 if self._slow_start else current + 1.0
            self._learnt = min(float(self.maximum), grown)


# A parked walk takes the place of a running one only when it has clearly more to read:
# PREEMPT times its remaining pages, plus PREEMPT_PAGES (a handover costs a page's time).
PREEMPT = 1.5
PREEMPT_PAGES = 2.0
UNKNOWN = math.inf  # the priority of a walk of unknown length


class _Waiter:
    __slots__ = ("granted", "priority", "ready")

    def __init__(self, priority: float) -> None:
        self.priority = priority
        self.granted = False
        self.ready = threading.Event()


class Places:
    """At most `cap()` walks advance at once, whichever resource or thread runs them; the
    others park between two pages. One per client (fanout.py takes and gives back places).

    A freed place goes to the parked walk with the most pages left to read (its `priority`;
    a walk of unknown length counts as longest), first come first served among equals, and a
    running walk of known length gives its place to a parked one with clearly more left
    (`keep`). Longest-remaining-first keeps a nightly run's few long child lists (a big
    segment's members) from being the only walks left at its end, each at one request at a
    time while the rate the plan allows goes unused."""

    def __init__(self, cap: Callable[[], int]) -> None:
        self._cap = cap
        self._lock = threading.Lock()
        self._taken = 0
        self._waiting: list[_Waiter] = []  # in arrival order

    @property
    def taken(self) -> int:
        """Places held right now."""
        with self._lock:
            return self._taken

    def _best_locked(self) -> _Waiter | None:
        # max() keeps the first of equals: arrival order among walks of the same priority.
        return max(self._waiting, key=lambda w: w.priority) if self._waiting else None

    def _grant_locked(self, cap: int) -> None:
        while self._taken < cap and (best := self._best_locked()) is not None:
            self._waiting.remove(best)
            best.granted = True
            self._taken += 1
            best.ready.set()

    def enter(self, stop: threading.Event | None = None, priority: float = UNKNOWN) -> None:
        """Wait for a place (or until `stop` is set) and take it."""
        me = _Waiter(priority)
        with self._lock:
            self._waiting.append(me)
            self._grant_locked(max(1, self._cap()))
            if me.granted:
                return
        while not me.ready.wait(0.25):
            # The cap may rise without anyone leaving: look again now and then.
            with self._lock:
                if me.granted:
                    return
                if stop is not None and stop.is_set():
                    self._waiting.remove(me)
                    self._taken += 1  # the caller gives it back, as after any enter()
                    return
                self._grant_locked(max(1, self._cap()))

    def leave(self) -> None:
        """Give a place back."""
        with self._lock:
            self._taken -= 1
            self._grant_locked(max(1, self._cap()))

    def keep(self, priority: float = UNKNOWN) -> bool:
        """After a page: True to go on with the walk, False when over the cap or when a parked
        walk has clearly more pages left than this one's `priority` (the place is given back:
        park, then call enter())."""
        with self._lock:
            cap = max(1, self._cap())
            if self._taken > cap:
                self._taken -= 1
                return False
            best = self._best_locked()
            if (best is not None and priority < UNKNOWN and best.priority < UNKNOWN
                    and best.priority > priority * PREEMPT + PREEMPT_PAGES):
                self._taken -= 1
                self._grant_locked(cap)
                return False
            self._grant_locked(cap)
            return True
