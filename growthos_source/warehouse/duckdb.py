"""The default warehouse: a DuckDB file whose memory does not grow with the data loaded.

DuckDB keeps every block it writes in its buffer pool until the pool reaches `memory_limit`,
which defaults to 80% of the machine's RAM: loading a 1,000,000-event backfill took the process
to ~900 MB although each load job streams one parquet file. A cap makes DuckDB evict (the
blocks are already on disk) instead, so peak memory stays flat as the backfill grows.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

logger = logging.getLogger("growthos_source")

DEFAULT_DATABASE = "growthos_warehouse.duckdb"
# Measured with benchmarks/connector_memory.py (1,000,000 events): uncapped 897 MB peak,
# 256MB 502 MB, 128MB 387 MB, at the same wall time.
DEFAULT_MEMORY_LIMIT = "128MB"


def configured_database() -> str:
    """The DuckDB file dlt's config names (`destination.duckdb.credentials` in
    `.dlt/config.toml` or DESTINATION__DUCKDB__CREDENTIALS), else DEFAULT_DATABASE."""
    value: Any = dlt.config.get("destination.duckdb.credentials")
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and value.get("database"):
        return str(value["database"])
    return DEFAULT_DATABASE


def duckdb_destination(database: str | None = None, *,
                       memory_limit: str | None = DEFAULT_MEMORY_LIMIT) -> Destination[Any, Any]:
    """A dlt DuckDB destination for `database` (default: `configured_database()`) with DuckDB's
    buffer pool capped at `memory_limit` (None: DuckDB's own default, 80% of RAM)."""
    # An instance, not a dict: with a dict dlt still resolves `destination.duckdb.credentials`
    # from the providers and rejects the plain string .dlt/config.toml holds.
    path = database or configured_database()
    if "://" in path:  # a connection string (duckdb:///file.duckdb): dlt parses it
        credentials = DuckDbCredentials(path)
    else:
        # A plain path is what dlt's parser falls back to, after importing SQLAlchemy to try
        # it as a URL first (~0.35 s of every command's start-up).
        credentials = DuckDbCredentials()
        credentials.database = path
    # Tables have no inherent order and every load job is one INSERT ... SELECT from a parquet
    # file: letting DuckDB insert row groups out of order made loading 200,000 events ~20%
    # faster (0.86 -> 0.69 s). Queries that need an order say ORDER BY.
    config: dict[str, Any] = {"preserve_insertion_order": False}
    if memory_limit:
        config["memory_limit"] = memory_limit
    credentials.global_config = config
    return dlt.destinations.duckdb(credentials=credentials)


# DuckDB pins buffers per column while it loads a table (they cannot spill to disk): measured
# with tests/test_destinations_wide.py's shape (3,000 columns, 300 rows), 2 threads failed at
# 512MB and loaded at 1GB, 1 thread loaded at 512MB. 256 KiB per column and thread has margin.
PER_COLUMN_THREAD = 256 * 1024
_UNITS = {"KB": 1000, "KIB": 1024, "MB": 1000**2, "MIB": 1024**2, "GB": 1000**3,
          "GIB": 1024**3, "B": 1}


def parse_size(text: str) -> int:
    """Bytes of a DuckDB size setting such as `128MB` or `1.5GiB`."""
    t = text.strip().upper().replace(" ", "")
    for unit in sorted(_UNITS, key=len, reverse=True):
        if t.endswith(unit):
            return int(float(t[: -len(unit)]) * _UNITS[unit])
    return int(float(t))


def fit_memory_limit(pipeline: dlt.Pipeline) -> str | None:
    """Raise the capped buffer pool of a DuckDB destination to what its widest table needs.

    The cap keeps memory flat on long, narrow loads (see DEFAULT_MEMORY_LIMIT), but a table
    with thousands of columns (free-form contact traits) needs pinned memory per column and
    fails every retry at 128MB. The limit becomes the larger of the cap and `columns x
    threads x PER_COLUMN_THREAD`, for the tables the local schema knows (call it again after
    a normalize added wider ones). Returns the new limit, or None when nothing changed (no
    cap, not DuckDB, or the cap is enough). Only ever raises the limit.
    """
    creds = _capped_credentials(pipeline)
    if creds is None or not pipeline.default_schema_name:
        return None
    config = creds.global_config
    widest = max((len(t.get("columns", {}))
                  for s in pipeline.schemas.values() for t in s.data_tables()), default=0)
    threads = int(config.get("threads") or os.cpu_count() or 1)
    need = widest * threads * PER_COLUMN_THREAD
    if need <= parse_size(str(config["memory_limit"])):
        return None
    limit = f"{-(-need // 1024**2)}MiB"
    config["memory_limit"] = limit
    logger.info("DuckDB memory limit raised to %s for a table of %d columns", limit, widest)
    return limit


# Beyond the width, what a load needs grows with its rows: a merge of 200,000 contacts held
# most of 128MB while other tables' jobs loaded beside it, and failed every retry. After an
# out-of-memory load the cap is doubled (up to this, or half the machine's memory if less)
# rather than failing a backfill that one more retry would finish.
MAX_RELIEVED = 4 * 1024**3


def relieve(pipeline: dlt.Pipeline) -> str | None:
    """After DuckDB ran out of its capped buffer pool loading: raise the cap so the pending
    package can be loaded again. First fitted to the widest table (`fit_memory_limit`); when
    that is enough already, doubled, up to `MAX_RELIEVED` or half the machine's memory.
    Returns the new limit, or None when there is no cap to raise or it is at its ceiling."""
    fitted = fit_memory_limit(pipeline)
    if fitted is not None:
        return fitted
    config = _cap(pipeline)
    if config is None:
        return None
    now = parse_size(str(config["memory_limit"]))
    ceiling = min(MAX_RELIEVED, _machine_memory() // 2)
    if now >= ceiling:
        return None
    limit = f"{-(-min(2 * now, ceiling) // 1024**2)}MiB"
    config["memory_limit"] = limit
    return limit


def _machine_memory() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not a POSIX system: assume 8 GiB
        return 8 * 1024**3


def memory_limit(pipeline: dlt.Pipeline) -> str | None:
    """The capped buffer pool's current limit (None: no cap, or not DuckDB)."""
    config = _cap(pipeline)
    return None if config is None else str(config["memory_limit"])


def _cap(pipeline: dlt.Pipeline) -> dict[str, Any] | None:
    """The DuckDB settings of a destination whose buffer pool is capped (None: no cap)."""
    creds = _capped_credentials(pipeline)
    return None if creds is None else creds.global_config


def _capped_credentials(pipeline: dlt.Pipeline) -> DuckDbCredentials | None:
    creds = _duckdb_credentials(pipeline)
    if creds is None or not creds.global_config:
        return None
    return creds if creds.global_config.get("memory_limit") else None


def is_out_of_memory(exc: BaseException) -> bool:
    """Did DuckDB run out of its buffer pool somewhere in this exception's chain?"""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if "Out of Memory Error" in str(e) or type(e).__name__ == "OutOfMemoryException":
            return True
        todo += [x for x in (e.__cause__, e.__context__, getattr(e, "exception", None))
                 if isinstance(x, BaseException)]
    return False


@contextmanager
def vacuum_off(pipeline: dlt.Pipeline) -> Iterator[bool]:
    """DuckDB's vacuum off in the databases the block's loads open (yields whether it is).

    A chunked backfill appends each chunk's load jobs as row groups that are partly filled at
    each file's end. Whichever checkpoint first sees two chunks' appends together may merge
    those row groups (DuckDB's vacuum), a rewrite of ~200,000 events that took 1.5 s after the
    backfill's last request, or not at all, depending on when dlt's connections closed
    (docs/performance.md). Partly filled row groups cost queries nothing measurable, and a later
    sync's checkpoints (in the background, warehouse/checkpoints.py) may still merge them. The
    setting is applied by dlt to every database it opens with these credentials; it is put back
    when the block ends. Nothing for other destinations, a destination dlt built from its own
    config (no credentials object to set), or a DuckDB without the setting.
    """
    creds = _duckdb_credentials(pipeline)
    if creds is None or not _has_setting("max_vacuum_tasks"):
        yield False
        return
    config = dict(creds.global_config or {})
    unset = object()
    old = config.get("max_vacuum_tasks", unset)
    creds.global_config = {**config, "max_vacuum_tasks": 0}
    try:
        yield True
    finally:
        now = dict(creds.global_config or {})  # the memory limit may have been raised meanwhile
        now.pop("max_vacuum_tasks", None)
        if old is not unset:
            now["max_vacuum_tasks"] = old
        creds.global_config = now


def _duckdb_credentials(pipeline: dlt.Pipeline) -> DuckDbCredentials | None:
    dest = pipeline.destination
    creds = getattr(dest, "config_params", {}).get("credentials") if dest else None
    return creds if isinstance(creds, DuckDbCredentials) else None


@functools.cache
def _has_setting(name: str) -> bool:
    """Whether this DuckDB knows the setting `name` (an unknown one fails every connection)."""
    import duckdb

    with duckdb.connect() as con:
        return bool(con.execute("SELECT 1 FROM duckdb_settings() WHERE name = ?",
                                [name]).fetchall())
