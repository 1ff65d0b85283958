"""Pages of event dicts -> arrow tables with the same flat columns dlt's normalizer would make.

Normalizing nested JSON row by row is dlt's bottleneck (~20k rows/s on one core); arrow tables
skip it (extract writes parquet directly). To keep the table just as queryable, nested objects
are flattened into `parent__child` columns here, lists are kept as JSON text, and documented
date-time fields become timestamps. Column types must stay stable across pages and runs (dlt
cannot alter a parquet column's type), so the first type seen — or the type already in the
schema — wins: integers fit a double column, anything fits a text column, and a value that does
not fit goes to a variant column `<name>__v_<type>` (dlt's own convention): nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa

from .keys import ascii_key

TIMESTAMP_FIELDS = ("timestamp", "received_at")
_TS = pa.timestamp("us", tz="UTC")
_DLT_TYPES: dict[str, pa.DataType] = {"text": pa.string(), "bigint": pa.int64(),
                                      "double": pa.float64(), "bool": pa.bool_(),
                                      "timestamp": _TS, "json": pa.string()}
_NAMES = {pa.string(): "text", pa.int64(): "bigint", pa.float64(): "double", pa.bool_(): "bool",
          _TS: "timestamp"}


def flatten(row: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """`{"a": {"b": 1}, "l": [1]}` -> `{"a__b": 1, "l": "[1]"}` (empty objects vanish, as in dlt)."""
    if out is None:
        out = {}
    for k, v in row.items():
        key = prefix + ascii_key(k)
        if isinstance(v, dict):
            flatten(v, key + "__", out)
        elif isinstance(v, list):
            out[key] = orjson.dumps(v).decode()
        else:
            out[key] = v
    return out


def _text(values: list[Any]) -> pa.Array:
    return pa.array([v if v is None or isinstance(v, str) else orjson.dumps(v).decode()
                     for v in values], pa.string())


class ArrowPages:
    """Converts pages to arrow tables, keeping each column's type stable."""

    def __init__(self, known: dict[str, str] | None = None,
                 normalize: Callable[[str], str] = lambda s: s,
                 required: tuple[str, ...] = ("id",)) -> None:
        self._required = set(required)  # the primary key: non-nullable, as dlt declares it
        self.types: dict[str, pa.DataType] = {
            name: _DLT_TYPES[t] for name, t in (known or {}).items() if t in _DLT_TYPES}
        self._normalize = normalize
        self._names: dict[str, str] = {}

    def _name(self, key: str) -> str:
        n = self._names.get(key)
        if n is None:
            n = self._names[key] = self._normalize(key)
        return n

    def table(self, rows: list[dict[str, Any]]) -> pa.Table:
        flat = [flatten(r) for r in rows]
        keys: dict[str, None] = {}
        for r in flat:
            keys.update(dict.fromkeys(r))
        columns: dict[str, pa.Array] = {}
        for key in keys:
            name = self._name(key)
            values = [r.get(key) for r in flat]
            if all(v is None for v in values) and name not in self.types:
                continue  # no type can be inferred yet; dlt drops such columns too
            arr, col = self._column(name, key, values)
            columns[col] = arr
        schema = pa.schema([pa.field(n, a.type, nullable=n not in self._required)
                            for n, a in columns.items()])
        return pa.table(columns, schema=schema)

    def _column(self, name: str, key: str, values: list[Any]) -> tuple[pa.Array, str]:
        want = self.types.get(name)
        if want is None and key in TIMESTAMP_FIELDS:
            want = self.types[name] = _TS
        if want == _TS:
            try:
                return pa.array(values, pa.string()).cast(_TS), name
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                pass
        elif want is not None:
            try:
                return pa.array(values, want), name
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                if want == pa.string():
                    return _text(values), name
        try:
            arr = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arr = _text(values)  # mixed types within the page
        if arr.type not in _NAMES:
            arr = _text(values)
        if want is None:
            self.types[name] = arr.type
            return arr, name
        # Does not fit the column's type: a variant column keeps it (dlt's naming).
        variant = f"{name}__v_{_NAMES[arr.type]}"
        if self.types.setdefault(variant, arr.type) != arr.type:
            arr = _text(values)
            variant = f"{name}__v_text"
            self.types.setdefault(variant, arr.type)
        return arr, variant
