"""Declared, seeded faults: what a flaky real API does, reproducible from a seed.

Each request draws from one seeded random stream in a fixed order, so a given seed and request
sequence always produce the same faults. Settings added later (`endless_page_rate`) draw from a
second stream, so the older settings keep giving the same faults for a seed.

Besides faults that hit single requests, an API can misbehave in how it answers: it may ignore
filters (`ignore_filters`: the listed query parameters are dropped before the handler sees
them, as by an API that does not know them) or never end a list (`endless_page_rate`: a last
page answers `has_more: true` with a fresh cursor that serves the same page again).
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

KINDS = ("error", "rate_limit", "disconnect", "truncate", "cursor_expiry", "empty_page",
         "repeat_cursor", "non_json")
# Faults that need a cursor in the request: they misbehave in the middle of a walk.
CURSOR_KINDS = {"cursor_expiry", "empty_page", "repeat_cursor"}
# What an API may ignore: the event stream's and the contact list's time filters (query
# parameters), and the analytics query's `group_by` (a body field).
QUERY_FILTERS = ("from", "to", "created_after", "created_before")
BODY_FILTERS = ("group_by",)
FILTERS = QUERY_FILTERS + BODY_FILTERS


@dataclass
class FaultConfig:
    seed: int = 0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    disconnect_rate: float = 0.0
    truncate_rate: float = 0.0
    cursor_expiry_rate: float = 0.0
    empty_page_rate: float = 0.0  # a page with no data, has_more true and a fresh cursor
    repeat_cursor_rate: float = 0.0  # next_cursor equal to the cursor just sent (a loop)
    non_json_rate: float = 0.0  # 200 with an HTML maintenance page instead of JSON
    latency_ms: int = 0
    retry_after_s: int = 1
    # A last page reached with a cursor says has_more with a fresh cursor to the same page.
    endless_page_rate: float = 0.0
    ignore_filters: list[str] = field(default_factory=list)  # some of FILTERS

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}; known: {sorted(names)}")
        cfg = cls(**data)
        for k in ("error_rate", "rate_limit_rate", "disconnect_rate", "truncate_rate",
                  "cursor_expiry_rate", "empty_page_rate", "repeat_cursor_rate",
                  "non_json_rate", "endless_page_rate"):
            v = getattr(cfg, k)
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"{k} must be a number between 0 and 1")
        if not isinstance(cfg.ignore_filters, list) or not set(cfg.ignore_filters) <= set(FILTERS):
            raise ValueError(f"ignore_filters must be a list of some of {list(FILTERS)}")
        return cfg


class Faults:
    """Decides, per request, which fault (if any) to inject."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.set(FaultConfig())

    def set(self, cfg: FaultConfig) -> None:
        with self._lock:
            self.config = cfg
            self._seen: dict[str, int] = {}  # times each request was drawn for
            self._rng2 = random.Random(f"{cfg.seed}:answers")

    def draw(self, method: str, path: str, params: dict[str, str]) -> str | None:
        """The fault for this request: one of KINDS or None (cursor kinds only for requests
        with a `cursor`).

        Drawn from the seed, the request (method, path and query without the cursor, which
        differs with the data) and how often that request was seen, not from the order
        requests arrive in: a client's concurrent requests (several resources, the opening
        probes sent together) arrive in an order that varies from run to run, and a test's
        seeded faults must fall on the same requests every run."""
        c = self.config
        rates = (c.error_rate, c.rate_limit_rate, c.disconnect_rate, c.truncate_rate,
                 c.cursor_expiry_rate, c.empty_page_rate, c.repeat_cursor_rate, c.non_json_rate)
        if not any(rates):
            return None
        has_cursor = "cursor" in params
        key = f"{method} {path} {sorted(i for i in params.items() if i[0] != 'cursor')}"
        with self._lock:
            n = self._seen[key] = self._seen.get(key, 0) + 1
        rng = random.Random(f"{c.seed}:{key}:{n}")
        r = [rng.random() for _ in KINDS]
        for kind, x, rate in zip(KINDS, r, rates):
            if x < rate and (has_cursor or kind not in CURSOR_KINDS):
                return kind
        return None

    def endless(self) -> bool:
        """Whether this last page (reached with a cursor) should say there is more."""
        rate = self.config.endless_page_rate
        if not rate:
            return False
        with self._lock:
            return self._rng2.random() < rate

    def filtered(self, params: dict[str, Any], body: bool = False) -> dict[str, Any]:
        """The query parameters (or with `body`, the body fields) the handler sees: without
        the ones the API ignores."""
        ignored = [k for k in self.config.ignore_filters
                   if (k in BODY_FILTERS) == body]
        if not ignored or not any(k in params for k in ignored):
            return params
        return {k: v for k, v in params.items() if k not in ignored}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self.config)
