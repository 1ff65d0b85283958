"""The event stream's warehouse operations: what the event reader reads during extract (per-bucket
counts, ids behind the mark, contact changes) and replacing the re-read ranges after the load.

Part of the `ops.py` interface (same rules): a table that was never loaded reads as None; any
other failure to read or write raises `WarehouseError` with one line naming the table. Every
statement is a plain SELECT / DELETE through a `Backend`, so the same code serves SQL
warehouses and Delta tables.

During extract the reader runs in dlt's worker threads, where opening a destination client
(which resolves dlt's configuration, not thread-safe) is not allowed: `open_reader()` opens the
backend on the main thread with the tables it will need, and the reader only queries it, one
query at a time (the caller holds a lock).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseTerminalException, DatabaseUndefinedRelation

from ..errors import GrowthOSError
from .backends import RANGES_CHUNK, Backend, any_range, chunks
from .ops import WarehouseError, destination_type, session, short

# Load ids are decimal strings of a UNIX time, compared as numbers (a text comparison depends
# on the warehouse's collation); DECIMAL is accepted by every SQL destination (PostgreSQL has
# no DOUBLE) and by DuckDB over Delta tables.
LOAD_ID = "CAST({} AS DECIMAL(24, 9))"

# Seconds since the epoch of a timestamp column, independent of the session's time zone.
_EPOCH = {
    "bigquery": "UNIX_SECONDS({c})",
    "snowflake": "DATE_PART(EPOCH_SECOND, {c})",
    "mssql": "DATEDIFF_BIG(SECOND, '1970-01-01', {c})",
}
_EPOCH_DEFAULT = "EXTRACT(EPOCH FROM {c})"  # DuckDB (and Delta through it), PostgreSQL, Redshift


@contextmanager
def open_reader(pipeline: dlt.Pipeline, tables: Sequence[str]) -> Iterator[Backend]:
    """The pipeline's destination, open for reads of `tables` from any thread (see the module
    docstring). Raises WarehouseError when the destination cannot be opened (failures of the
    block itself pass through as they are)."""
    with ExitStack() as stack:
        try:
            b = stack.enter_context(session(pipeline))
            b.preload(*tables)
        except GrowthOSError:
            raise
        except Exception as exc:
            raise WarehouseError(
                f"cannot open the {destination_type(pipeline) or 'destination'} warehouse "
                f"(dataset {pipeline.dataset_name}) to read {', '.join(tables)}: {short(exc)}; "
                "check the destination's credentials and that it is reachable") from exc
        yield b


@contextmanager
def _reading(b: Backend, table: str, what: str) -> Iterator[None]:
    try:
        yield
    except (GrowthOSError, DatabaseUndefinedRelation):
        raise
    except DatabaseTerminalException as exc:  # the warehouse answered: the SQL is refused
        raise WarehouseError(f"cannot read {what} of table {table} in the warehouse: "
                             f"{short(exc)}; is the table still as the connector loaded it "
                             "(a column renamed or dropped)?") from exc
    except Exception as exc:
        raise WarehouseError(f"cannot read {what} of table {table} in the warehouse: "
                             f"{short(exc)}; check the destination's credentials and that it "
                             "is reachable") from exc


@contextmanager
def _absent_is_empty() -> Iterator[None]:
    """A table in the schema that was never loaded holds no rows."""
    try:
        yield
    except DatabaseUndefinedRelation:
        pass


def _rows_or_none(b: Backend, table: str, what: str, sql: str) -> list[tuple[Any, ...]] | None:
    """Rows of `sql`, which reads `table` (`{t}` in it); None when the table was never
    loaded."""
    with _reading(b, table, what):
        try:
            return b.query(sql.format(t=b.table(table)))
        except DatabaseUndefinedRelation:
            return None


def bucket_counts(b: Backend, table: str, column: str, seconds: int) -> Counter[int] | None:
    """Rows of `table` per `seconds`-long bucket of timestamp `column` since the epoch (None
    when the table was never loaded)."""
    epoch = _EPOCH.get(b.dialect, _EPOCH_DEFAULT).format(c=b.column(column))
    rows = _rows_or_none(b, table, "the row counts",
                         f"SELECT FLOOR({epoch} / {int(seconds)}), COUNT(*) FROM {{t}} GROUP BY 1")
    return None if rows is None else Counter({int(k): int(n) for k, n in rows if k is not None})


def ids_since(b: Backend, table: str, column: str, since: dt.datetime) -> set[str] | None:
    """Ids of the rows of `table` whose timestamp `column` is at or after `since` (None when
    the table was never loaded)."""
    rows = _rows_or_none(b, table, "the ids", f"SELECT id FROM {{t}} WHERE "
                         f"{b.column(column)} >= {b.literal(since)}")
    return None if rows is None else {str(r[0]) for r in rows}


def newest_load(b: Backend, tables: Sequence[str]) -> str | None:
    """The newest load id among `tables` (None when none was loaded)."""
    values: list[Decimal] = []
    for t in tables:
        with _reading(b, t, "the newest load id"):
            try:
                rows = b.query(f"SELECT MAX({LOAD_ID.format(b.column('_dlt_load_id'))}) "
                               f"FROM {b.table(t)}")
            except DatabaseUndefinedRelation:
                continue
        values += [Decimal(str(r[0])) for r in rows if r[0] is not None]
    return str(max(values)) if values else None


def vanished_with_events(b: Backend, log: str, events: str, parent: str,
                         after: str) -> list[str]:
    """Ids of `parent` records in deletion log `log` (loaded after load id `after`) that
    still have rows in `events` (`contact_id`); none when a table was never loaded."""
    rows: list[tuple[Any, ...]] = []
    c, lid = b.column, b.column("_dlt_load_id")
    with _reading(b, log, "the deletions"), _absent_is_empty():
        rows = b.query(
            f"SELECT DISTINCT d.{c('record_id')} FROM {b.table(log)} d WHERE "
            f"d.{c('table_name')} = {b.literal(parent)} AND {LOAD_ID.format('d.' + lid)} > "
            f"{LOAD_ID.format(b.literal(after))} AND EXISTS (SELECT 1 FROM {b.table(events)} "
            f"e WHERE e.{c('contact_id')} = d.{c('record_id')})")
    return [str(r[0]) for r in rows]


def stale_attribution(b: Backend, events: str, contacts: str, column: str, ext: str,
                      after: str) -> list[Any]:
    """Distinct `column` values of the rows of `events` whose `user_id` differs from their
    contact's external id `ext`, for contacts loaded after load id `after`."""
    c = b.column
    rows: list[tuple[Any, ...]] = []
    with _reading(b, events, "the attribution"), _absent_is_empty():
        rows = b.query(
            f"SELECT DISTINCT e.{c(column)} FROM {b.table(events)} e JOIN {b.table(contacts)} "
            f"k ON k.{c('id')} = e.{c('contact_id')} WHERE "
            f"{LOAD_ID.format('k.' + c('_dlt_load_id'))} > {LOAD_ID.format(b.literal(after))} "
            f"AND k.{c('_deleted_at')} IS NULL "
            f"AND e.{c('user_id')} IS DISTINCT FROM k.{c(ext)}")
    return [r[0] for r in rows]


def values_by_key(b: Backend, table: str, key: str, keys: Sequence[str],
                  column: str) -> dict[str, list[Any]]:
    """`key value -> [column values]` of the rows of `table` whose `key` is one of `keys`."""
    out: dict[str, list[Any]] = {}
    for part in chunks(list(keys)):
        rows: list[tuple[Any, ...]] = []
        with _reading(b, table, f"{column} by {key}"), _absent_is_empty():
            rows = b.query(f"SELECT {b.column(key)}, {b.column(column)} FROM {b.table(table)} "
                           f"WHERE {b.column(key)} IN ({', '.join(b.literal(k) for k in part)})")
        for k, v in rows:
            out.setdefault(str(k), []).append(v)
    return out


def replace_ranges(pipeline: dlt.Pipeline, table: str, log: str, column: str) -> int:
    """Delete the rows of `table` inside each `[lo, hi)` range of timestamp `column` logged in
    `log` that loads older than the log row wrote, then empty the log. Returns rows deleted.

    Idempotent (only rows older than a log row's load go), so a run killed part way is
    finished by the next call. On SQL warehouses all of it is one transaction; on Delta each
    delete is a commit of its own, the log's last."""
    try:
        with session(pipeline) as b, b.transaction():
            try:
                ranges = b.query(f"SELECT lo, hi, {b.column('_dlt_load_id')} "
                                 f"FROM {b.table(log)}")
                t = b.table(table)
            except DatabaseUndefinedRelation:
                return 0  # in the schema, never loaded
            lid = b.column("_dlt_load_id")
            removed = 0
            # The ranges of one load are replaced together: one scan finds the older loads'
            # rows in any of them, one delete removes them (a run logs all its ranges in one
            # load; an earlier run's left pending have their own).
            by_load: dict[str, list[tuple[Any, Any]]] = {}
            for lo, hi, load_id in ranges:
                by_load.setdefault(str(load_id), []).append((lo, hi))
            for load_id, spans in sorted(by_load.items(), key=lambda kv: Decimal(kv[0])):
                for part in chunks(spans, RANGES_CHUNK):
                    t = b.table(table)  # on Delta: the version after the previous delete
                    older = b.query(
                        f"SELECT {lid}, COUNT(*) FROM {t} WHERE "
                        f"{any_range(b.column(column), part, b.literal)} AND "
                        f"{LOAD_ID.format(lid)} < {LOAD_ID.format(b.literal(load_id))} "
                        f"GROUP BY {lid}")
                    if older:
                        b.delete_ranges(table, column, part,
                                        ("_dlt_load_id", [str(r[0]) for r in older]))
                        removed += sum(int(r[1]) for r in older)
            if ranges:
                b.delete_all(log)
            return removed
    except GrowthOSError:
        raise
    except Exception as exc:
        raise WarehouseError(f"cannot replace the re-read rows of table {table} in the "
                             f"{destination_type(pipeline)} warehouse: {short(exc)}; the next "
                             "run replaces them") from exc
