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

from .endpoints import ENDPOINTS, Endpoint

logger = logging.getLogger("growthos_source")

LOG_TABLE = "_growthos_deletions"
DELETE_MODES = ("mark", "remove")


def _query(table: str, select: str, where: str = "") -> list[tuple[Any, ...]] | None:
    """Rows of `SELECT {select} FROM table` in the running pipeline's destination, or None when
    there is nothing to read yet (first run, no destination, table not created)."""
    try:
        pipeline = dlt.current.pipeline()
        if not pipeline.default_schema_name or not pipeline.destination:
            return None
        if table not in pipeline.default_schema.tables:
            return None
        with pipeline.sql_client() as client:
            name = client.make_qualified_table_name(table)
            return list(client.execute_sql(f"SELECT {select} FROM {name} {where}") or ())
    except Exception as exc:  # noqa: BLE001  (no table or dataset yet: nothing known)
        logger.debug("cannot read %s from the destination: %s", table, exc)
        return None


def warehouse_ids(table: str, requires: str | None = None) -> set[str] | None:
    """Ids of the live (not yet marked deleted) rows of `table` in the destination; with
    `requires`, only rows where that column is set."""
    rows = _query(table, "id", "WHERE _deleted_at IS NULL"
                  + (f" AND {requires} IS NOT NULL" if requires else ""))
    return None if rows is None else {str(r[0]) for r in rows}


def warehouse_values(table: str, columns: Iterable[str]) -> dict[str, tuple[Any, ...]]:
    """`id -> (columns...)` of the rows of `table` in the destination ({} when unavailable)."""
    rows = _query(table, ", ".join(["id", *columns]))
    return {str(r[0]): tuple(r[1:]) for r in rows or ()}


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
    present) are touched, and a record loaded again after its deletion was noticed is left
    alone.
    """
    tables = pipeline.default_schema.tables
    if LOG_TABLE not in tables:
        return {}
    changed: dict[str, int] = {}
    with pipeline.sql_client() as c:
        for ep in ENDPOINTS:
            if ep.deletes and ep.table in tables:
                for mode in DELETE_MODES:
                    _apply_one(c, tables, ep, mode, changed)
    if changed:
        logger.info("deletes applied: %s", changed)
    return changed


def _apply_one(c: Any, tables: dict[str, Any], ep: Endpoint, mode: str,
               changed: dict[str, int]) -> None:
    q = c.make_qualified_table_name
    log = (f"(SELECT record_id, MAX(deleted_at) AS deleted_at, "
           f"MAX(CAST(_dlt_load_id AS DOUBLE PRECISION)) AS load_id FROM {q(LOG_TABLE)} "
           f"WHERE table_name = '{ep.table}' AND mode = '{mode}' GROUP BY record_id)")
    for table, column in ((ep.table, "id"), *ep.cascade):
        if table not in tables:
            continue
        t = q(table)
        match = (f"{t}.{column} = d.record_id AND "
                 f"CAST({t}._dlt_load_id AS DOUBLE PRECISION) <= d.load_id")
        if mode == "mark":
            n = _count(c, f"SELECT COUNT(*) FROM {t} JOIN {log} d ON {match} "
                          f"WHERE {t}._deleted_at IS NULL")
            if n:
                c.execute_sql(f"UPDATE {t} SET _deleted_at = d.deleted_at FROM {log} d "
                              f"WHERE {match} AND {t}._deleted_at IS NULL")
        else:
            ids = f"SELECT {t}._dlt_id FROM {t} JOIN {log} d ON {match}"
            n = _count(c, f"SELECT COUNT(*) FROM ({ids}) x")
            if n:
                for nested in _nested(tables, table):
                    c.execute_sql(f"DELETE FROM {q(nested)} WHERE _dlt_root_id IN ({ids})")
                c.execute_sql(f"DELETE FROM {t} WHERE _dlt_id IN ({ids})")
        if n:
            changed[table] = changed.get(table, 0) + n


def _count(client: Any, sql: str) -> int:
    rows = client.execute_sql(sql)
    return int(rows[0][0]) if rows else 0
