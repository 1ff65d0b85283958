"""How many requests a client keeps in flight: as many as make it faster, no more.

Concurrency pays when the API is slow to answer (at 50 ms a request, a Scale key's 100 req/s
needs ~5 requests in flight) and costs when it answers at once: the walks then only wait for
each other — for the server, and in this process for the interpreter lock, which a thread must
win back after every socket read (measured unthrottled on 2 cores: 16 walks in flight took ~10%
longer than 2, and their requests 32 ms instead of 2.5 ms). So the limit follows latency, as TCP
Vegas does: while requests answer about as fast as the fastest recent ones it grows by one;
when they take clearly longer, requests are queueing somewhere and it shrinks by a quarter.
Only the HTTP exchange is timed (not pacing, not retries), and only successful answers count.
fanout.py runs at most `limit` walks at a time.
"""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["ConcurrencyLimit"]

# A typical latency above TOLERANCE x the recent minimum (+ SLACK, for jitter at
# sub-millisecond latencies) means requests are queueing.
TOLERANCE = 2.0
SLACK = 0.002
DECREASE = 0.75
# The minimum latency is that of the last HISTORY revisions, so it follows a slower network.
HISTORY = 20
MIN_SAMPLES = 4


class ConcurrencyLimit:
    """A concurrency limit between `minimum` and `maximum`, learnt from request latencies;
    it starts at `maximum` (a slow API loses nothing while it is learnt)."""

    def __init__(self, maximum: int, minimum: int = 1) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError("need 1 <= minimum <= maximum")
        self.minimum, self.maximum = minimum, maximum
        self._limit = float(maximum)
        self._lock = threading.Lock()
        self._samples: list[float] = []
        self._mins: deque[float] = deque(maxlen=HISTORY)

    @property
    def limit(self) -> int:
        return int(self._limit)

    def observe(self, seconds: float) -> None:
        """Record the latency of one successful exchange; revise the limit every
        `max(MIN_SAMPLES, limit)` of them."""
        with self._lock:
            self._samples.append(seconds)
            if len(self._samples) >= max(MIN_SAMPLES, int(self._limit)):
                self._revise()

    def _revise(self) -> None:
        samples, self._samples = sorted(self._samples), []
        self._mins.append(samples[0])
        typical = samples[len(samples) // 2]
        if typical > min(self._mins) * TOLERANCE + SLACK:
            self._limit = max(float(self.minimum), self._limit * DECREASE)
        else:
            self._limit = min(float(self.maximum), self._limit + 1)
