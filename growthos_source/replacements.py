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

The SQL is plain (comparisons, EXISTS, DELETE) and runs on DuckDB and PostgreSQL. The
filesystem (Delta) destination gets no session: no re-reads happen there, so nothing needs
replacing (docs/events.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import dlt

from .warehouse import ops

logger = logging.getLogger("growthos_source")

LOG_TABLE = "_growthos_event_replacements"
EVENTS_TABLE = "events"


@dataclass
class Session:
    """The warehouse as the event reader may read it during one `sync()` run.

    The reader runs in dlt's extract thread pool; creating a SQL client there resolves dlt's
    configuration, whose injected contexts are not thread-safe (the main thread's extract
    found them mangled). So `sync()` opens the client on the main thread before the run and
    the reader only executes queries on it, one at a time."""

    client: Any | None
    tables: dict[str, Any]
    reattribute_only: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_SESSIONS: dict[str, Session] = {}


@contextmanager
def session(pipeline: dlt.Pipeline, reattribute_only: bool = False) -> Iterator[Session]:
    """Open the warehouse for the event reader of `pipeline`'s next run (see `Session`)."""
    tables: dict[str, Any] = (pipeline.default_schema.tables if pipeline.default_schema_name
                              else {})
    ready = EVENTS_TABLE in tables and pipeline.destination is not None
    if ready and ops.is_delta(pipeline):
        # Its SQL client reads the files but cannot delete the older copies of re-read rows.
        logger.info("events: on the filesystem destination late events and merges are not "
                    "reconciled (new events load as before)")
        ready = False
    try:
        client_cm = pipeline.sql_client() if ready else None
    except Exception as exc:  # noqa: BLE001  (a destination without SQL: Delta, files)
        logger.info("events: the warehouse has no SQL client (%s): late events and merges "
                    "are not reconciled", exc)
        client_cm = None
    with client_cm if client_cm is not None else nullcontext() as client:
        s = Session(client, dict(tables), reattribute_only)
        _SESSIONS[pipeline.pipeline_name] = s
        try:
            yield s
        finally:
            _SESSIONS.pop(pipeline.pipeline_name, None)


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
def running_sql() -> Iterator[Any | None]:
    """The open SQL client of the running `sync()` (None without one: first run, a plain
    `pipeline.run()`, a destination without SQL)."""
    s = current()
    if s is None or s.client is None:
        yield None
        return
    with s.lock:
        yield s.client


def apply(pipeline: dlt.Pipeline) -> int:
    """Delete the rows of logged ranges that loads older than the log row wrote, then the
    log. Returns the rows deleted."""
    if not pipeline.default_schema_name:
        return 0
    tables = pipeline.default_schema.tables
    if LOG_TABLE not in tables or EVENTS_TABLE not in tables or ops.is_delta(pipeline):
        return 0
    with pipeline.sql_client() as c:
        q, ts = c.make_qualified_table_name, c.escape_column_name("timestamp")
        e, log = q(EVENTS_TABLE), q(LOG_TABLE)
        match = (f"SELECT 1 FROM {log} r WHERE {e}.{ts} >= r.lo AND {e}.{ts} < r.hi AND "
                 f"CAST({e}._dlt_load_id AS DECIMAL(24, 9)) < CAST(r._dlt_load_id AS DECIMAL(24, 9))")
        rows = c.execute_sql(f"SELECT COUNT(*) FROM {e} WHERE EXISTS ({match})")
        n = int(rows[0][0]) if rows else 0
        if n:
            c.execute_sql(f"DELETE FROM {e} WHERE EXISTS ({match})")
        c.execute_sql(f"DELETE FROM {log}")
    if n:
        logger.info("events: replaced %d rows of re-read ranges", n)
    return n
