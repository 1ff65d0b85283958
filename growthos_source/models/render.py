"""What a view's SQL is rendered against: the tables and columns the warehouse really has.

dlt creates a column only once a load carried a value for it, so a documented field that was
null in every row so far (`survey_responses.category` when only CSAT surveys answered,
`campaigns.scheduled_at` with no broadcast) is simply absent. Views reference columns through
`Warehouse.col`, which gives a typed NULL for an absent one, so the same view definition works
on any loaded subset; a view whose *tables* are absent is skipped instead (see catalog.py).

The SQL is written once in the dialect DuckDB and PostgreSQL share: `CAST(x AS DOUBLE
PRECISION)`, `array_agg(x ORDER BY y)`, `ts AT TIME ZONE 'UTC'`, CTEs and window functions.
Only identifier quoting comes from the destination (dlt's capabilities).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# IANA names (Europe/Berlin, America/Argentina/Buenos_Aires, UTC, Etc/GMT+5): rendered into the
# SQL as a literal, so nothing else may pass.
_TIMEZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")


def check_timezone(tz: str) -> str:
    """`tz` if it looks like an IANA time zone name, else a ValueError naming the fix."""
    if not _TIMEZONE.match(tz):
        raise ValueError(f"models: timezone {tz!r} is not a time zone name; use an IANA name "
                         "such as 'UTC' or 'Europe/Berlin'")
    return tz


@dataclass(frozen=True)
class Warehouse:
    """The dataset's tables (name -> column names) plus how to quote and qualify names."""

    columns: Mapping[str, frozenset[str]]
    quote: Callable[[str], str]  # identifier quoting of the destination
    qualify: Callable[[str], str]  # table name -> dataset-qualified, quoted name
    timezone: str = "UTC"

    def has(self, table: str, column: str | None = None) -> bool:
        cols = self.columns.get(table)
        return cols is not None and (column is None or column in cols)

    def table(self, name: str) -> str:
        return self.qualify(name)

    def col(self, alias: str, table: str, column: str, sql_type: str) -> str:
        """`alias."column"`, or `CAST(NULL AS sql_type)` when the warehouse lacks the column."""
        if self.has(table, column):
            return f"{alias}.{self.quote(column)}"
        return f"CAST(NULL AS {sql_type})"

    def day(self, expr: str) -> str:
        """The calendar day of timestamp `expr` in the models' time zone."""
        return f"CAST({expr} AT TIME ZONE '{self.timezone}' AS DATE)"

    def month(self, expr: str) -> str:
        """The first day of the month of timestamp `expr` in the models' time zone."""
        return f"CAST(date_trunc('month', {expr} AT TIME ZONE '{self.timezone}') AS DATE)"


def ratio(num: str, den: str) -> str:
    """num / den as a double (NULL when den is 0 or NULL): full precision, rounded by nobody."""
    return f"CAST({num} AS DOUBLE PRECISION) / NULLIF({den}, 0)"


def count_if(cond: str) -> str:
    """Rows meeting `cond` (portable: no FILTER clause)."""
    return f"COUNT(CASE WHEN {cond} THEN 1 END)"
