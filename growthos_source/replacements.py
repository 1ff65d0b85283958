"""Time ranges of the `events` table re-read in a run, and replacing the older copies after load.

`events` is loaded with `append`: a merge would join every load against the whole table (see
endpoints.py). A run that re-reads a stretch of the stream (the lookback behind the mark, a day
whose count differs from the API's, the instants of events whose contact was merged) therefore
appends a second copy of rows the warehouse already holds. Such a run also appends one row per
re-read range `[lo, hi)` to `_growthos_event_replacements`, in the same load package (so it
commits atomically with the rows and the state). After the load, `apply()` deletes the rows of
those ranges that earlier loads wrote, then the log rows: the range then holds exactly this
run's copy. `apply()` is idempotent (it only deletes rows older than the log row's load), so a
run killed between load and apply is finished by the next `sync()`, which applies before it
reads anything.

The warehouse side (the reads during extract, the replacement) is `warehouse/stream.py`, the
same on SQL warehouses and Delta tables.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dlt

from .warehouse import stream
from .warehouse.backends import Backend

logger = logging.getLogger("growthos_source")

LOG_TABLE = "_growthos_event_replacements"
EVENTS_TABLE = "events"


@dataclass
class Session:
    """The warehouse as the event reader may read it during one `sync()` run.

    The reader runs in dlt's extract thread pool; opening a destination client there resolves
    dlt's configuration, whose injected contexts are not thread-safe (the main thread's extract
    found them mangled). So `sync()` opens the warehouse on the main thread before the run
    (`stream.open_reader`) and the reader only queries it, one query at a time."""

    backend: Backend | None
    tables: dict[str, Any]
    reattribute_only: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_SESSIONS: dict[str, Session] = {}


# The tables the event reader reads during extract.
READ_TABLES = (EVENTS_TABLE, "contacts", "_growthos_deletions")


@contextmanager
def session(pipeline: dlt.Pipeline, reattribute_only: bool = False) -> Iterator[Session]:
    """Open the warehouse for the event reader of `pipeline`'s next run (see `Session`).
    Before the first load of `events` there is nothing to read (the session has no backend);
    a warehouse that cannot be opened raises WarehouseError."""
    tables: dict[str, Any] = (pipeline.default_schema.tables if pipeline.default_schema_name
                              else {})
    ready = EVENTS_TABLE in tables and pipeline.destination is not None
    with stream.open_reader(pipeline, READ_TABLES) if ready else _nothing() as backend:
        s = Session(backend, dict(tables), reattribute_only)
        _SESSIONS[pipeline.pipeline_name] = s
        try:
            yield s
        finally:
            _SESSIONS.pop(pipeline.pipeline_name, None)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def current() -> Session | None:
    """The session of the pipeline being extracted, if `sync()` opened one."""
    try:
        name = dlt.current.pipeline().pipeline_name
    except Exception:  # noqa: BLE001  (extracted outside a pipeline)
        return None
    return _SESSIONS.get(name)


def log_rows(ranges: list[tuple[str, str]], reason: str, noticed_at: str) -> Any:
    """The log item for re-read ranges (ISO 8601 `lo` inclusive, `hi` exclusive)."""
    rows = [{"lo": lo, "hi": hi, "reason": reason, "noticed_at": noticed_at}
            for lo, hi in ranges]
    return dlt.mark.with_hints(rows, dlt.mark.make_hints(
        table_name=LOG_TABLE, write_disposition="append", primary_key=[], merge_key=[],
        columns=[{"name": "lo", "data_type": "timestamp", "nullable": False},
                 {"name": "hi", "data_type": "timestamp", "nullable": False},
                 {"name": "reason", "data_type": "text", "nullable": False},
                 {"name": "noticed_at", "data_type": "timestamp", "nullable": False}]),
        create_table_variant=True)


@contextmanager
def running_backend() -> Iterator[Backend | None]:
    """The open warehouse of the running `sync()` (None without one: first run, a plain
    `pipeline.run()`)."""
    s = current()
    if s is None or s.backend is None:
        yield None
        return
    with s.lock:
        yield s.backend


def apply(pipeline: dlt.Pipeline) -> int:
    """Delete the rows of logged ranges that loads older than the log row wrote, then the
    log. Returns the rows deleted."""
    if not pipeline.default_schema_name:
        return 0
    tables = pipeline.default_schema.tables
    if LOG_TABLE not in tables or EVENTS_TABLE not in tables:
        return 0
    n = stream.replace_ranges(pipeline, EVENTS_TABLE, LOG_TABLE, "timestamp")
    if n:
        logger.info("events: replaced %d rows of re-read ranges", n)
    return n
