"""The default warehouse: a DuckDB file whose memory does not grow with the data loaded.

DuckDB keeps every block it writes in its buffer pool until the pool reaches `memory_limit`,
which defaults to 80% of the machine's RAM: loading a 1,000,000-event backfill took the process
to ~900 MB although each load job streams one parquet file. A cap makes DuckDB evict (the
blocks are already on disk) instead, so peak memory stays flat as the backfill grows.
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

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
    credentials = DuckDbCredentials(database or configured_database())
    # Tables have no inherent order and every load job is one INSERT ... SELECT from a parquet
    # file: letting DuckDB insert row groups out of order made loading 200,000 events ~20%
    # faster (0.86 -> 0.69 s). Queries that need an order say ORDER BY.
    config: dict[str, Any] = {"preserve_insertion_order": False}
    if memory_limit:
        config["memory_limit"] = memory_limit
    credentials.global_config = config
    return dlt.destinations.duckdb(credentials=credentials)
