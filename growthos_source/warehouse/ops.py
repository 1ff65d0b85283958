"""Everything the connector does in the warehouse itself, for every dlt destination.

No other module sends SQL to the destination; they call these (each takes the pipeline, or
during extract uses the running one):

Reads (None / {} only when the table was never loaded; any other failure to read raises
`WarehouseError`, one line naming the table, never a silent "first run"):
    known_ids(table, requires=None)         ids of the live rows (`_deleted_at IS NULL`)
    known_values(table, columns)            {id: (columns...)}
    day_counts(pipeline, table, column)     {"YYYY-MM-DD": rows} by UTC day of a timestamp column
    read(pipeline, sql, *tables, **literals) rows of a plain SELECT; `{name}` in `sql` becomes
                                            the qualified name of table `name` (or the escaped
                                            literal `literals[name]`)
    restore_state(pipeline)                 dlt's state from the warehouse (a fresh runner)
Writes:
    delete_days(pipeline, table, column, days)   remove the rows of those UTC days
    update_in / delete_in (on `session()`'s backend)  set a column / delete rows by key
Sessions:
    session(pipeline)                       a context manager yielding the `Backend` of the
                                            pipeline's destination (see backends.py)

Deletes (mark/remove with cascades and nested tables) live in `deletes.py`, the replayed-rows
cleanup and adopting warehouse columns in `recovery.py`, the event stream's reads during extract
and the replacement of re-read ranges in `stream.py`; all go through `session()`.

Which backend: a destination whose dlt SQL client can write gets `SqlBackend`; the filesystem
destination with Delta tables gets `DeltaBackend`. Dialect-specific SQL is chosen here from
the destination type (only the UTC day of a timestamp differs so far).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from ..errors import GrowthOSError
from .backends import Backend, SqlBackend
from .delta import DeltaBackend

logger = logging.getLogger("growthos_source")


class WarehouseError(GrowthOSError):
    """The warehouse could not be read or changed (unreachable, wrong credentials, a table
    that is not what the connector loaded)."""


def destination_type(pipeline: dlt.Pipeline) -> str:
    """`duckdb`, `postgres`, `filesystem`, ... (dlt's destination type, short form)."""
    if pipeline.destination is None:
        return ""
    return str(pipeline.destination.destination_type).rsplit(".", 1)[-1]


def is_delta(pipeline: dlt.Pipeline) -> bool:
    return destination_type(pipeline) == "filesystem"


@contextmanager
def session(pipeline: dlt.Pipeline) -> Iterator[Backend]:
    """The pipeline's destination as a `Backend`, open for the block."""
    if is_delta(pipeline):
        backend = DeltaBackend(pipeline)
        try:
            yield backend
        finally:
            backend.close()
        return
    with pipeline.sql_client() as client:
        yield SqlBackend(client, destination_type(pipeline))


def _where(pipeline: dlt.Pipeline, table: str) -> str:
    return (f"table {table} in the {destination_type(pipeline) or 'destination'} warehouse "
            f"(dataset {pipeline.dataset_name})")


def read(pipeline: dlt.Pipeline, sql: str, *tables: str, any_pipeline: bool = False,
         **literals: Any) -> list[tuple[Any, ...]] | None:
    """Rows of `sql` with `{name}` replaced by each of `tables`' qualified names and by each
    of `literals` escaped for the destination; None when one of the tables was never loaded.
    Raises WarehouseError on any other failure. With `any_pipeline`, tables this pipeline's
    schema does not know are read too (loaded by another pipeline into the same dataset)."""
    if pipeline.destination is None:
        return None
    if not any_pipeline:
        known: dict[str, Any] = (pipeline.default_schema.tables
                                 if pipeline.default_schema_name else {})
        if any(t not in known for t in tables):
            return None
    try:
        with session(pipeline) as b:
            names = {t: b.table(t) for t in tables}
            values = {k: b.literal(v) for k, v in literals.items()}
            return b.query(sql.format(**names, **values))
    except DatabaseUndefinedRelation:
        return None  # in the schema (normalized) but not loaded yet
    except GrowthOSError:
        raise
    except Exception as exc:
        raise WarehouseError(f"cannot read {_where(pipeline, tables[0] if tables else '?')}: "
                             f"{short(exc)}; check the destination's credentials and that it "
                             "is reachable") from exc


def restore_state(pipeline: dlt.Pipeline) -> None:
    """Bring the pipeline's state and schemas from the warehouse when the warehouse's are newer
    (a runner that starts empty). Raises WarehouseError when the warehouse cannot be read."""
    try:
        pipeline.sync_destination()
    except GrowthOSError:
        raise
    except Exception as exc:
        raise WarehouseError(f"cannot read the state of pipeline {pipeline.pipeline_name} from "
                             f"the {destination_type(pipeline) or 'destination'} warehouse "
                             f"(dataset {pipeline.dataset_name}): {short(exc)}") from exc


def short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _current() -> dlt.Pipeline:
    return dlt.current.pipeline()


def known_ids(table: str, requires: str | None = None,
              pipeline: dlt.Pipeline | None = None) -> set[str] | None:
    """Ids of the live (not marked deleted) rows of `table`; with `requires`, only rows where
    that column is set. None when the table was never loaded."""
    where = "WHERE _deleted_at IS NULL" + (f" AND {requires} IS NOT NULL" if requires else "")
    rows = read(pipeline or _current(), f"SELECT id FROM {{{table}}} {where}", table)
    return None if rows is None else {str(r[0]) for r in rows}


def known_values(table: str, columns: Iterable[str],
                 pipeline: dlt.Pipeline | None = None) -> dict[str, tuple[Any, ...]]:
    """`id -> (columns...)` of the rows of `table` ({} when the table was never loaded)."""
    cols = ", ".join(["id", *columns])
    rows = read(pipeline or _current(), f"SELECT {cols} FROM {{{table}}}", table)
    return {str(r[0]): tuple(r[1:]) for r in rows or ()}


# The UTC calendar day of a timestamp column, per dialect (a plain CAST uses the session's
# time zone on PostgreSQL and DuckDB).
_DAY = {
    "postgres": "CAST(({c} AT TIME ZONE 'UTC') AS DATE)",
    "duckdb": "CAST(timezone('UTC', {c}) AS DATE)",
    "motherduck": "CAST(timezone('UTC', {c}) AS DATE)",
    "filesystem": "CAST(timezone('UTC', {c}) AS DATE)",
    "snowflake": "CAST(CONVERT_TIMEZONE('UTC', {c}) AS DATE)",
    "bigquery": "DATE({c}, 'UTC')",
}


def day_counts(pipeline: dlt.Pipeline, table: str, column: str) -> dict[str, int]:
    """`{"YYYY-MM-DD": rows}` of `table` by the UTC day of timestamp `column` ({} when never
    loaded)."""
    day = _DAY.get(destination_type(pipeline), "CAST({c} AS DATE)").format(c=column)
    rows = read(pipeline, f"SELECT {day} AS d, COUNT(*) FROM {{{table}}} GROUP BY {day}", table)
    return {_iso_day(r[0]): int(r[1]) for r in rows or () if r[0] is not None}


def _iso_day(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)[:10]


def delete_days(pipeline: dlt.Pipeline, table: str, column: str,
                days: Iterable[str | dt.date]) -> int:
    """Remove the rows of `table` whose timestamp `column` falls on one of `days` (UTC).
    Returns the rows removed. A day is a half-open UTC range, so the predicate is the same on
    every destination (and prunes partitions or uses an index where one exists). For tables
    without nested tables (the event stream)."""
    wanted = sorted({d if isinstance(d, str) else d.isoformat() for d in days})
    if not wanted or read(pipeline, f"SELECT 1 FROM {{{table}}} WHERE 1 = 0", table) is None:
        return 0
    removed = 0
    try:
        with session(pipeline) as b:
            c = b.column(column)
            for day in wanted:
                lo = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
                hi = lo + dt.timedelta(days=1)
                n = b.query(f"SELECT COUNT(*) FROM {b.table(table)} WHERE {c} >= "
                            f"{b.literal(lo)} AND {c} < {b.literal(hi)}")[0][0]
                if n:
                    b.delete_ranges(table, column, [(lo, hi)])
                    removed += int(n)
    except GrowthOSError:
        raise
    except Exception as exc:
        raise WarehouseError(f"cannot delete days from {_where(pipeline, table)}: "
                             f"{short(exc)}") from exc
    return removed
