"""How SQL reaches each kind of destination: the two backends behind `ops.py`.

`SqlBackend`: any dlt destination with a writable SQL client (DuckDB, PostgreSQL, Snowflake,
BigQuery, ...). Statements use only SQL those accept: SELECT with GROUP BY / EXISTS, and
UPDATE / DELETE filtered by `IN (literal, ...)`; literals are escaped by the destination's own
`escape_literal`.

`DeltaBackend` (delta.py): the filesystem destination with `table_format="delta"`. dlt's SQL
client there is DuckDB views over the tables and needs DuckDB's `delta` extension, which DuckDB
downloads on first use (machines without internet cannot); it is read-only anyway. So reads run the same SQL
in an in-memory DuckDB over the tables' arrow datasets (read by the `deltalake` library dlt uses
to write them), and writes are `DeltaTable.update` / `DeltaTable.delete` commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

# Literals per statement of `... WHERE key IN (...)`: well below every destination's limit on
# statement size, large enough that deletes of a few thousand records take a few statements.
IN_CHUNK = 500
# Time ranges per statement of `... WHERE (c >= lo AND c < hi) OR ...`: one scan of the table
# for all of them (a statement per range scanned it once each: 144 ranges took 1.3 s on a
# 1,000,000-event DuckDB table).
RANGES_CHUNK = 100

# An extra `column IN (values)` filter of a delete.
Also = tuple[str, Sequence[Any]] | None


class Backend(Protocol):
    """What `ops.py` needs from a destination."""

    dialect: str

    def table(self, name: str) -> str:
        """The qualified, quoted name of a table of the pipeline's dataset."""

    def column(self, name: str) -> str:
        """A quoted column name."""

    def literal(self, value: Any) -> str:
        """A SQL literal of `value`, escaped for this destination."""

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a SELECT (raises dlt's DatabaseUndefinedRelation when a table is missing)."""

    def update_in(self, table: str, column: str, value: Any, key: str,
                  keys: Sequence[Any]) -> None:
        """SET `column` = `value` on the rows whose `key` is one of `keys`."""

    def delete_in(self, table: str, key: str, keys: Sequence[Any],
                  also: Also = None) -> None:
        """Delete the rows whose `key` is one of `keys` (and, with `also`, whose column
        `also[0]` is one of `also[1]`)."""

    def delete_ranges(self, table: str, column: str, ranges: Sequence[tuple[Any, Any]],
                      also: Also = None) -> None:
        """Delete the rows with `lo <= column < hi` for any `(lo, hi)` of `ranges` (and, with
        `also`, whose column `also[0]` is one of `also[1]`)."""

    def delete_all(self, table: str) -> None:
        """Delete every row of `table`."""

    def preload(self, *tables: str) -> None:
        """Resolve what reading `tables` needs now, on this thread (see stream.open_reader)."""

    def keep_one_copy(self, table: str, key: str, keys: Sequence[Any],
                      also: Also = None) -> None:
        """Rows with `key` in `keys` (filtered by `also`) that are exact copies of each other
        become one row."""

    def transaction(self) -> AbstractContextManager[None]:
        """A block whose statements commit together where the destination can."""


def any_range(column: str, ranges: Sequence[tuple[Any, Any]],
              literal: Callable[[Any], str]) -> str:
    """`(c >= lo AND c < hi) OR ...` for each range, in parentheses."""
    return "(" + " OR ".join(f"({column} >= {literal(lo)} AND {column} < {literal(hi)})"
                             for lo, hi in ranges) + ")"


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


_SCRATCH = "_growthos_replayed_rows"


class SqlBackend:
    """A destination reached through dlt's SQL client (one open connection)."""

    def __init__(self, client: Any, dialect: str) -> None:
        self.client, self.dialect = client, dialect

    def table(self, name: str) -> str:
        return str(self.client.make_qualified_table_name(name))

    def column(self, name: str) -> str:
        return str(self.client.escape_column_name(name))

    def literal(self, value: Any) -> str:
        return str(self.client.capabilities.escape_literal(value))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.client.execute_sql(sql) or ()]

    def _in(self, key: str, keys: Iterable[Any]) -> str:
        return f"{self.column(key)} IN ({', '.join(self.literal(k) for k in keys)})"

    def update_in(self, table: str, column: str, value: Any, key: str,
                  keys: Sequence[Any]) -> None:
        for part in chunks(keys):
            self.client.execute_sql(f"UPDATE {self.table(table)} SET {self.column(column)} = "
                                    f"{self.literal(value)} WHERE {self._in(key, part)}")

    def _where(self, key: str, keys: Sequence[Any], also: Also) -> str:
        return self._in(key, keys) + (f" AND {self._in(*also)}" if also else "")

    def delete_in(self, table: str, key: str, keys: Sequence[Any],
                  also: Also = None) -> None:
        for part in chunks(keys):
            self.client.execute_sql(f"DELETE FROM {self.table(table)} WHERE "
                                    f"{self._where(key, part, also)}")

    def keep_one_copy(self, table: str, key: str, keys: Sequence[Any],
                      also: Also = None) -> None:
        # In the warehouse (types kept exactly): the distinct copies to a scratch table, the
        # copies out, the distinct ones back, in one transaction.
        t, tmp = self.table(table), self.table(_SCRATCH)
        with self.transaction():
            for part in chunks(keys):
                where = self._where(key, part, also)
                self.client.execute_sql(f"DROP TABLE IF EXISTS {tmp}")
                self.client.execute_sql(f"CREATE TABLE {tmp} AS SELECT DISTINCT * FROM {t} "
                                        f"WHERE {where}")
                self.client.execute_sql(f"DELETE FROM {t} WHERE {where}")
                self.client.execute_sql(f"INSERT INTO {t} SELECT * FROM {tmp}")
                self.client.execute_sql(f"DROP TABLE {tmp}")

    def delete_ranges(self, table: str, column: str, ranges: Sequence[tuple[Any, Any]],
                      also: Also = None) -> None:
        extra = f" AND {self._in(*also)}" if also else ""
        for part in chunks(ranges, RANGES_CHUNK):
            self.client.execute_sql(f"DELETE FROM {self.table(table)} WHERE "
                                    f"{any_range(self.column(column), part, self.literal)}"
                                    f"{extra}")

    def delete_all(self, table: str) -> None:
        self.client.execute_sql(f"DELETE FROM {self.table(table)}")

    def preload(self, *tables: str) -> None:
        pass  # the client is open; qualifying a name needs nothing more

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.client.begin_transaction():
            yield
