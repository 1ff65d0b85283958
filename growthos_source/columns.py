"""The columns our OpenAPI document declares for each table, with their types, as dlt hints.

dlt creates a column only once a load brings a non-null value for it, so a documented nullable
field (a delivery's `delivered_at`) would be missing from the table until one shows up, and SQL
naming it would fail. Declared columns exist from the first load, null or not, with the
document's type (a value of another type goes to a variant column, values.py).

The declarations are data (`columns.json`), generated from the document by
`tests/test_values_columns.py`, which also checks they still match it: the connector never
reads the simulator's files. Free-form objects (`traits`, `properties`) are not declared and
evolve with the data.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

COLUMNS_FILE = Path(__file__).with_name("columns.json")


@cache
def _all() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(COLUMNS_FILE.read_text())
    return data


def declared_types(table: str) -> dict[str, str]:
    """column -> dlt data type for `table` ({} for a table the document does not describe)."""
    return dict(_all().get(table, {}))


def declared(table: str, keep: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """dlt column hints for `table`: each declared column, nullable (the API may omit any of
    them), except the columns in `keep` (the primary key), which keep dlt's own settings."""
    return {name: {"name": name, "data_type": t, **({} if name in keep else {"nullable": True})}
            for name, t in _all().get(table, {}).items()}
