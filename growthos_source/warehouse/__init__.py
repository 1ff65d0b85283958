"""The warehouse side of the connector: everything done in the destination itself.

    ops.py       the one interface: reads during extract, per-day counts and deletes, plain
                 reads; `session()` opens the destination as a backend
    backends.py  the Backend protocol; SQL destinations through dlt's SQL client
    delta.py     Delta tables (deltalake commits, reads in DuckDB over arrow)
    deletes.py   records that vanished from the API: logged, then marked or removed
    stream.py    the event stream's reads during extract (counts, ids, contact changes) and
                 the replacement of re-read ranges
    recovery.py  after a crash: pending packages, rows replayed loads duplicated, columns an
                 aborted package left in the warehouse
    refusals.py  a pending package the warehouse refuses: named in one line, set aside
    duckdb.py    the default destination: a DuckDB file with a capped buffer pool
"""

from .duckdb import DEFAULT_DATABASE, DEFAULT_MEMORY_LIMIT, configured_database, duckdb_destination
from .ops import WarehouseError

__all__ = ["DEFAULT_DATABASE", "DEFAULT_MEMORY_LIMIT", "WarehouseError", "configured_database",
           "duckdb_destination"]
