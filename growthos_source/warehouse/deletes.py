"""Soft deletes that an incremental sync would never see.

GrowthOS hides deleted contacts, segments and webhook endpoints from every list. Their lists are
walked whole every run, so after a *complete* walk the ids that are in the warehouse but were
not seen have vanished. Those ids go to the `_growthos_deletions` log table, loaded in the same
package as the run's data (so it commits atomically with state). After the load, `apply()`
marks the rows (`_deleted_at`, default) or removes them with their nested rows (`remove`, for
erasure requests), plus the rows of cascaded child tables. `apply()` is idempotent: a run killed
between load and apply is finished by the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from ..endpoints import ENDPOINTS, Endpoint
from ..errors import GrowthOSError
from . import ops
from .backends import Backend

logger = logging.getLogger("growthos_source")

LOG_TABLE = "_growthos_deletions"
DELETE_MODES = ("mark", "remove")


def warehouse_ids(table: str, requires: str | None = None) -> set[str] | None:
    """Ids of the live rows of `table` in the running pipeline's warehouse (see ops.known_ids:
    None only when it was never loaded; a warehouse that cannot be read raises)."""
    return ops.known_ids(table, requires)


def warehouse_values(table: str, columns: Iterable[str]) -> dict[str, tuple[Any, ...]]:
    """`id -> (columns...)` of the rows of `table` (see ops.known_values)."""
    return ops.known_values(table, columns)


def deletion_rows(ep: Endpoint, vanished: Iterable[str], noticed_at: str,
                  mode: str) -> list[dict[str, Any]]:
    """Log rows for records that vanished; `mode` says how `apply()` treats them."""
    return [{"table_name": ep.table, "record_id": rid, "deleted_at": noticed_at, "mode": mode}
            for rid in sorted(vanished)]


def log_hints() -> Any:
    """Table hints of the deletion log (appended to by the tables that track deletes)."""
    return dlt.mark.make_hints(
        table_name=LOG_TABLE, write_disposition="append", primary_key=[], merge_key=[],
        columns=[{"name": "table_name", "data_type": "text", "nullable": False},
                 {"name": "record_id", "data_type": "text", "nullable": False},
                 {"name": "deleted_at", "data_type": "timestamp", "nullable": False},
                 {"name": "mode", "data_type": "text", "nullable": False}])


def _nested(schema_tables: dict[str, Any], table: str) -> list[str]:
    """Nested tables of `table` (lists inside its records), deepest first."""
    out: list[str] = []
    for name, t in schema_tables.items():
        if t.get("parent") == table:
            out = _nested(schema_tables, name) + [name] + out
    return out


def apply(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Mark or remove (as each log row says) the warehouse rows named in the deletion log.

    Returns rows changed per table. Safe to call again: only rows not yet marked (or still
    present) are touched, and a record loaded again after its deletion was noticed (a later
    load id than the log row's) is left alone. The rows to change are found with one portable
    SELECT, then changed by `_dlt_id`, so the same code serves SQL warehouses and Delta tables.
    In `remove` mode nested rows go first: a run killed in between leaves parents whose
    nested rows are gone, which the next run removes.
    """
    tables = pipeline.default_schema.tables
    if LOG_TABLE not in tables:
        return {}
    changed: dict[str, int] = {}
    try:
        with ops.session(pipeline) as b:
            for ep in ENDPOINTS:
                if ep.deletes and ep.table in tables:
                    for mode in DELETE_MODES:
                        _apply_one(b, tables, ep, mode, changed)
    except GrowthOSError:
        raise
    except DatabaseUndefinedRelation:
        return changed  # the log table is in the schema but was never loaded
    except Exception as exc:
        raise ops.WarehouseError(f"cannot apply the deletes noticed in this run to the "
                                 f"{ops.destination_type(pipeline)} warehouse: "
                                 f"{' '.join(str(exc).split())[:300]}; the next run retries "
                                 "them") from exc
    if changed:
        logger.info("deletes applied: %s", changed)
    return changed


# dlt load ids are decimal strings of a UNIX time; compared as numbers (a text comparison
# depends on the warehouse's collation). DECIMAL is accepted by every SQL destination.
_LOAD_ID = "CAST({} AS DECIMAL(24, 9))"


def _apply_one(b: Backend, tables: dict[str, Any], ep: Endpoint, mode: str,
               changed: dict[str, int]) -> None:
    log, col = b.table(LOG_TABLE), b.column
    for table, column in ((ep.table, "id"), *ep.cascade):
        if table not in tables:
            continue
        columns = tables[table].get("columns", {})
        key = "_dlt_id" if "_dlt_id" in columns else column
        t = b.table(table)
        match = (f"l.record_id = t.{col(column)} AND l.table_name = {b.literal(ep.table)} "
                 f"AND l.mode = {b.literal(mode)} AND "
                 f"{_LOAD_ID.format('t.' + col('_dlt_load_id'))} <= "
                 f"{_LOAD_ID.format('l.' + col('_dlt_load_id'))}")
        live = f" WHERE t.{col('_deleted_at')} IS NULL" if mode == "mark" else ""
        rows = b.query(f"SELECT t.{col(key)}, MAX(l.deleted_at) FROM {t} t JOIN {log} l "
                       f"ON {match}{live} GROUP BY t.{col(key)}")
        if not rows:
            continue
        with b.transaction():
            if mode == "mark":
                by_time: dict[Any, list[Any]] = {}
                for k, when in rows:
                    by_time.setdefault(when, []).append(k)
                for when, keys in by_time.items():
                    b.update_in(table, "_deleted_at", when, key, keys)
            else:
                keys = [r[0] for r in rows]
                for nested in _nested(tables, table):
                    b.delete_in(nested, "_dlt_root_id", keys)
                b.delete_in(table, key, keys)
        changed[table] = changed.get(table, 0) + len(rows)
