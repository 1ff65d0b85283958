"""Delta tables of a filesystem destination as a `Backend` (see backends.py for why: reads run
in an in-memory DuckDB over the tables' arrow datasets, writes are `deltalake` commits)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dlt
import duckdb as duckdb_lib
import pyarrow as pa

from .backends import RANGES_CHUNK, Also, any_range, chunks

# The views of Delta tables end in this LIMIT so that DuckDB keeps its filters to itself (columns
# are still pruned): pushed into the arrow dataset, a filter fails on a table whose files
# disagree on a text column's arrow type. dlt writes `string` or `dictionary<string>` (the
# event stream), deltalake's own updates and deletes rewrite files with `string_view`, and
# pyarrow has no comparison or cast between some of those ("no kernel matching input types").
NO_PUSHDOWN = 2**63 - 1


class DeltaBackend:
    """Delta tables of a filesystem destination: reads through DuckDB over arrow, writes
    through `deltalake`."""

    dialect = "duckdb"

    def __init__(self, pipeline: dlt.Pipeline) -> None:
        self.pipeline = pipeline
        self.dataset = pipeline.dataset_name
        self._con = duckdb_lib.connect()
        self._con.execute(f'CREATE SCHEMA "{self.dataset}"')
        self._tables: dict[str, Any] = {}
        self._missing: set[str] = set()  # tables found to have no Delta table in this session

    def close(self) -> None:
        self._con.close()

    def _delta(self, name: str) -> Any:
        """The DeltaTable of `name`, or raise DatabaseUndefinedRelation when it has none."""
        from deltalake.exceptions import TableNotFoundError
        from dlt.common.libs.deltalake import get_delta_tables
        from dlt.destinations.exceptions import DatabaseUndefinedRelation

        if name in self._missing:
            raise DatabaseUndefinedRelation(LookupError(f"table {name} has no Delta table yet"))
        if name not in self._tables:
            try:
                self._tables[name] = get_delta_tables(self.pipeline, name)[name]
            except (ValueError, TableNotFoundError) as exc:
                self._missing.add(name)
                raise DatabaseUndefinedRelation(exc) from exc
        return self._tables[name]

    def table(self, name: str) -> str:
        """Registers the table's current version as a view, then names it."""
        view = f'"{self.dataset}"."{name}"'
        dt = self._delta(name)
        dt.update_incremental()
        arrow = f"_arrow_{name}"
        self._con.register(arrow, dt.to_pyarrow_dataset())
        self._con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {arrow} "
                          f"LIMIT {NO_PUSHDOWN}")
        return view

    def column(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def literal(self, value: Any) -> str:
        from dlt.common.data_writers.escape import escape_duckdb_literal

        return str(escape_duckdb_literal(value))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._con.execute(sql).fetchall()]

    def _in(self, key: str, keys: Iterable[Any]) -> str:
        # DataFusion's SQL (deltalake's predicates): plain quoted strings and numbers
        def lit(v: Any) -> str:
            return "'" + str(v).replace("'", "''") + "'" if isinstance(v, str) else str(v)
        return f"{self.column(key)} IN ({', '.join(lit(k) for k in keys)})"

    def update_in(self, table: str, column: str, value: Any, key: str,
                  keys: Sequence[Any]) -> None:
        dt = self._delta(table)
        expr = _delta_value(value)
        for part in chunks(keys):
            dt.update(updates={self.column(column): expr}, predicate=self._in(key, part))

    def _where(self, key: str, keys: Sequence[Any], also: Also) -> str:
        return self._in(key, keys) + (f" AND {self._in(*also)}" if also else "")

    def delete_in(self, table: str, key: str, keys: Sequence[Any],
                  also: Also = None) -> None:
        dt = self._delta(table)
        for part in chunks(keys):
            dt.delete(self._where(key, part, also))

    def keep_one_copy(self, table: str, key: str, keys: Sequence[Any],
                      also: Also = None) -> None:
        # One Delta commit: an overwrite whose predicate selects the copies replaces them with
        # their distinct rows. (A delete then an append were two commits: a run killed between
        # them lost the rows for good, as no copy was left for the next run to find.)
        from deltalake import write_deltalake

        dt = self._delta(table)
        view = self.table(table)
        parts, where = [], []
        for part in chunks(keys):
            w = self._where(key, part, also)
            where.append(f"({w})")
            parts.append(self._con.sql(f"SELECT DISTINCT * FROM {view} WHERE {w}")
                         .to_arrow_table())
        if not parts:
            return
        rows = pa.concat_tables(parts).cast(pa.schema(dt.schema()))
        write_deltalake(dt, rows, mode="overwrite", predicate=" OR ".join(where))

    def delete_ranges(self, table: str, column: str, ranges: Sequence[tuple[Any, Any]],
                      also: Also = None) -> None:
        extra = f" AND {self._in(*also)}" if also else ""
        for part in chunks(ranges, RANGES_CHUNK):
            self._delta(table).delete(any_range(self.column(column), part, _delta_instant)
                                      + extra)

    def delete_all(self, table: str) -> None:
        self._delta(table).delete()

    def preload(self, *tables: str) -> None:
        # Finding a Delta table asks dlt for the destination's configuration, which must not
        # happen in an extract worker thread; tables never loaded stay unknown (reads raise
        # DatabaseUndefinedRelation as they would anyway).
        from dlt.destinations.exceptions import DatabaseUndefinedRelation

        for name in tables:
            try:
                self._delta(name)
            except DatabaseUndefinedRelation:
                pass

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # Each Delta write is its own commit (one table each); callers order their writes so
        # that a run killed between two of them is finished by the next run: deletes.py
        # (nested rows before their parents, idempotent), stream.replace_ranges (the log
        # last); keep_one_copy is a single commit.
        yield


def _delta_value(value: Any) -> str:
    """A DataFusion SQL expression for an update's new value."""
    import datetime as dt

    if value is None:
        return "NULL"
    if isinstance(value, dt.datetime):
        v = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        iso = v.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return f"to_timestamp_micros('{iso}')"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _delta_instant(value: Any) -> str:
    """A DataFusion SQL instant comparable with dlt's timestamp columns (microseconds, UTC):
    `to_timestamp_micros` has no time zone, and DataFusion compares no timestamps of
    different zones."""
    import datetime as dt

    v = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    iso = v.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"arrow_cast('{iso}', 'Timestamp(Microsecond, Some(\"UTC\"))')"
