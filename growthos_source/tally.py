"""Per-table request counters for the run ledger (ledger.py).

The client reports each attempt, 429, retry and second waited on the rate limit here; while a
sync runs, `ledger.Recorder` activates a `RequestTally` and reads it per table at the end.
Outside a sync nothing is counted. The tally is process-wide (the client's worker threads all
report into it) because the client may be built before the sync starts.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from .endpoints import ENDPOINTS

OTHER = "other"


def _table_patterns() -> list[tuple[re.Pattern[str], str]]:
    # A hidden parent walk (`_contacts_all`) reads its table's own list: count it there.
    out: list[tuple[re.Pattern[str], str]] = []
    for ep in ENDPOINTS:
        if ep.kind == "parent":
            continue
        rx = re.escape(ep.path).replace(r"\{id\}", "[^/]+").replace(r"\{code\}", "[^/]+")
        out.append((re.compile(rx), ep.table))
    return out


_PATTERNS = _table_patterns()


def table_for_path(path: str) -> str:
    """The table an API path (relative to base_url, e.g. `/surveys/srv_1/responses`) feeds."""
    # Paths from the API's `next` links carry base_url's own path (`/v1/contacts`).
    for candidate in (path, "/" + path.lstrip("/").partition("/")[2]):
        for rx, table in _PATTERNS:
            if rx.fullmatch(candidate):
                return table
    return OTHER


@dataclass
class Counts:
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    waited: float = 0.0


class RequestTally:
    """Thread-safe counters per table."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[str, str] = {}
        self.tables: dict[str, Counts] = {}

    def add(self, path: str, *, requests: int = 0, throttled: int = 0, retries: int = 0,
            waited: float = 0.0) -> None:
        with self._lock:
            table = self._by_path.get(path)
            if table is None:
                table = table_for_path(path)
                if len(self._by_path) < 10_000:  # child paths carry ids: keep the cache small
                    self._by_path[path] = table
            c = self.tables.setdefault(table, Counts())
            c.requests += requests
            c.throttled += throttled
            c.retries += retries
            c.waited += waited

    def get(self, table: str) -> Counts:
        with self._lock:
            c = self.tables.get(table, Counts())
            return Counts(c.requests, c.throttled, c.retries, c.waited)


_active: RequestTally | None = None


def activate(tally: RequestTally | None) -> RequestTally | None:
    """Make `tally` the one the client reports to (None: stop counting); returns the old one."""
    global _active
    old, _active = _active, tally
    return old


def count(path: str, *, requests: int = 0, throttled: int = 0, retries: int = 0,
          waited: float = 0.0) -> None:
    """Called by the client: add to the active tally, if a sync is recording one."""
    t = _active
    if t is not None:
        t.add(path, requests=requests, throttled=throttled, retries=retries, waited=waited)
