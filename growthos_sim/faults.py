"""Declared, seeded faults: what a flaky real API does, reproducible from a seed.

Each request draws from one seeded random stream in a fixed order, so a given seed and request
sequence always produce the same faults.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

KINDS = ("error", "rate_limit", "disconnect", "truncate", "cursor_expiry")


@dataclass
class FaultConfig:
    seed: int = 0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    disconnect_rate: float = 0.0
    truncate_rate: float = 0.0
    cursor_expiry_rate: float = 0.0
    latency_ms: int = 0
    retry_after_s: int = 1

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FaultConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}; known: {sorted(names)}")
        cfg = cls(**data)
        for k in ("error_rate", "rate_limit_rate", "disconnect_rate", "truncate_rate",
                  "cursor_expiry_rate"):
            v = getattr(cfg, k)
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"{k} must be a number between 0 and 1")
        return cfg


class Faults:
    """Decides, per request, which fault (if any) to inject."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.set(FaultConfig())

    def set(self, cfg: FaultConfig) -> None:
        with self._lock:
            self.config = cfg
            self._rng = random.Random(cfg.seed)

    def draw(self, has_cursor: bool) -> str | None:
        """The fault for this request: one of KINDS or None."""
        c = self.config
        with self._lock:
            r = [self._rng.random() for _ in KINDS]
        rates = (c.error_rate, c.rate_limit_rate, c.disconnect_rate, c.truncate_rate,
                 c.cursor_expiry_rate if has_cursor else 0.0)
        for kind, x, rate in zip(KINDS, r, rates):
            if x < rate:
                return kind
        return None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self.config)
