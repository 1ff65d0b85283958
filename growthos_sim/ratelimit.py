"""Per-key request limits in fixed windows (one second, or longer: the docs' 429 example says
`Retry-After: 12`), with the documented headers."""

from __future__ import annotations

import math
import threading
import time

PLANS: dict[str, int | None] = {"free": 10, "growth": 50, "scale": 100, "unlimited": None}
# The Ingest API's limits per write key (requests per second) on the same plans.
INGEST_PLANS: dict[str, int | None] = {"free": 100, "growth": 500, "scale": 1000,
                                       "unlimited": None}


class RateLimiter:
    """Counts requests per key per fixed window of `window_s` wall-clock seconds; the plan's
    per-second limit is scaled to the window."""

    def __init__(self, plan: str, window_s: int = 1,
                 limits: dict[str, int | None] = PLANS) -> None:
        if plan not in limits:
            raise ValueError(f"unknown plan {plan!r}: choose one of {', '.join(limits)}")
        self.plan = plan
        self.window_s = max(1, int(window_s))
        per_second = limits[plan]
        self.limit = None if per_second is None else per_second * self.window_s
        self._windows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> tuple[bool, dict[str, str]]:
        """Count one request of `key`: (allowed, headers)."""
        now = time.time()
        window = math.floor(now / self.window_s) * self.window_s
        if self.limit is None:
            # "Unlimited" still answers with the headers every response carries.
            big = 1_000_000
            return True, {"X-RateLimit-Limit": str(big), "X-RateLimit-Remaining": str(big),
                          "X-RateLimit-Reset": str(window + self.window_s)}
        with self._lock:
            w, n = self._windows.get(key, (window, 0))
            if w != window:
                w, n = window, 0
            n += 1
            self._windows[key] = (w, n)
        allowed = n <= self.limit
        headers = {"X-RateLimit-Limit": str(self.limit),
                   "X-RateLimit-Remaining": str(max(0, self.limit - n)),
                   "X-RateLimit-Reset": str(window + self.window_s)}
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(window + self.window_s - now)))
        return allowed, headers
