"""Pages of event dicts -> arrow tables with the same flat columns dlt's normalizer would make.

Normalizing nested JSON row by row is dlt's bottleneck (~20k rows/s on one core); arrow tables
skip it (extract writes parquet directly). To keep the table just as queryable, nested objects
are flattened into `parent__child` columns here, lists are kept as JSON text, and documented
date-time fields become timestamps. Column types must stay stable across pages and runs (dlt
cannot alter a parquet column's type), so the first type seen — or the type already in the
schema — wins, and a value goes into a column only if the column's type holds it exactly (the
rules of values.py, shared with the row path): others go to the variant column
`<name>__v_<type>` (dlt's own convention), integers beyond int64 as text. Keys of one record
that would share a column name are renamed as values.py does. Nothing is dropped or changed.

A batch is converted by pyarrow, in C++, into one struct array whose fields are split into
columns. When the pages' response bodies came along (walks.PageRows, page_batch.py),
pyarrow's JSON reader parses them again: it runs outside the GIL on its own threads, so the walks and dlt keep the
interpreter meanwhile (the dicts are still parsed once for cursors and checks). Otherwise
pyarrow types the dicts (`pa.array`, ~3x faster than flattening them in Python, but holding
the GIL). Either refuses a batch whose values change type within a field (a number here, a
string there); such a batch takes the Python path, which sorts the values out column by
column. All three give the same columns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .keys import ascii_key
from .page_batch import Batch, read_bodies
from .values import EXACT_IN_DOUBLE, as_stored, rename_collisions, value_type

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


def _dig(row: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(row, dict):
            return None
        row = row.get(k)
    return row


def _json_list(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _timestamps(values: pa.Array | list[Any]) -> pa.Array | None:
    """ISO 8601 strings as timestamps; None if not all are (they then go to a variant column)."""
    try:
        strings = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
        return strings.cast(_TS)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


class ArrowPages:
    """Converts pages to arrow tables, keeping each column's type stable."""

    def __init__(self, known: dict[str, str] | None = None,
                 normalize: Callable[[str], str] = lambda s: s,
                 required: tuple[str, ...] = ("id",), always: tuple[str, ...] = ()) -> None:
        self._required = set(required)  # the primary key: non-nullable, as dlt declares it
        self.types: dict[str, pa.DataType] = {
            name: _DLT_TYPES[t] for name, t in (known or {}).items() if t in _DLT_TYPES}
        self._normalize = normalize
        self._names: dict[str, str] = {}
        # columns every table has, null or not (the document's, columns.py)
        self._always = [n for n in always if n in self.types]
        self._keys: dict[str, str] = {}

    def _key(self, key: str) -> str:
        """One key as its column-name fragment."""
        n = self._keys.get(key)
        if n is None:
            n = self._keys[key] = self._normalize(ascii_key(key))
        return n

    def _column_of(self, path: tuple[str, ...]) -> str:
        return self._name("__".join(map(ascii_key, path)))

    def _name(self, key: str) -> str:
        n = self._names.get(key)
        if n is None:
            n = self._names[key] = self._normalize(key)
        return n

    def table(self, rows: list[dict[str, Any]] | Batch) -> pa.Table:
        """`rows` (or a Batch of them) as an arrow table; see the module docstring."""
        columns: dict[str, pa.Array] | None = None
        if isinstance(rows, Batch):
            if rows.bodies:
                struct = read_bodies(rows.bodies, rows.mask, len(rows.rows))
                if struct is not None:
                    columns = self._struct_columns(struct, rows.rows)
            rows = rows.rows
        if columns is None:
            columns = self._arrow_columns(rows)
        if columns is None:
            columns = self._python_columns(rows)
        for name in self._always:
            if name not in columns:
                columns[name] = pa.nulls(len(rows), self.types[name])
        schema = pa.schema([pa.field(n, a.type, nullable=n not in self._required)
                            for n, a in columns.items()])
        return pa.table(columns, schema=schema)

    def _arrow_columns(self, rows: list[dict[str, Any]]) -> dict[str, pa.Array] | None:
        """The columns of `rows` converted by pyarrow, or None if it cannot type them."""
        try:
            struct = pa.array(rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
                OverflowError, TypeError):
            return None  # a field changes type within the batch
        if not pa.types.is_struct(struct.type):
            return None
        return self._struct_columns(struct, rows)

    def _struct_columns(self, struct: pa.StructArray, rows: list[dict[str, Any]]
                        ) -> dict[str, pa.Array] | None:
        columns: dict[str, pa.Array] = {}
        if not self._split(struct, "", (), rows, columns):
            return None
        return columns

    def _split(self, struct: pa.StructArray, prefix: str, path: tuple[str, ...],
               rows: list[dict[str, Any]], out: dict[str, pa.Array]) -> bool:
        # StructArray.flatten() folds the parent's nulls into each child, as a missing object
        # leaves its keys empty in the Python path.
        for field, child in zip(struct.type, struct.flatten()):
            key = prefix + ascii_key(field.name)
            if pa.types.is_struct(child.type):
                if not self._split(child, key + "__", (*path, field.name), rows, out):
                    return False
                continue
            name = self._name(key)
            if name in out:
                return False  # two keys, one column name: the Python path renames one
            if pa.types.is_null(child.type):
                if name in self.types:
                    placed = self._column(name, key, [None] * len(child))
                else:
                    continue  # no type can be inferred yet; dlt drops such columns too
            elif pa.types.is_list(child.type) or pa.types.is_large_list(child.type):
                values: list[Any] = [None] * len(child)
                for i in pc.indices_nonzero(child.is_valid()).to_pylist():  # lists are rare
                    values[i] = _json_list(_dig(rows[i], (*path, field.name)))
                placed = self._column(name, key, values)
            else:
                placed = self._fit(name, key, child)
            for col, arr in placed:
                if col in out:
                    return False
                out[col] = arr
        return True

    def _fit(self, name: str, key: str, arr: pa.Array) -> list[tuple[str, pa.Array]]:
        """Place a column pyarrow typed: where the column's type holds it, else variants."""
        want = self._want(name, key)
        if want == _TS and pa.types.is_string(arr.type):
            ts = _timestamps(arr)
            if ts is not None:
                return [(name, ts)]
        if arr.type not in _NAMES:
            return self._column(name, key, arr.to_pylist())
        return self._place(name, arr)

    def _python_columns(self, rows: list[dict[str, Any]]) -> dict[str, pa.Array]:
        for r in rows:
            rename_collisions(r, self._column_of, self._key)
        flat = [flatten(r) for r in rows]
        by_name: dict[str, list[Any]] = {}
        first_key: dict[str, str] = {}
        for i, r in enumerate(flat):
            for key, v in r.items():
                name = self._name(key)
                values = by_name.get(name)
                if values is None:
                    values = by_name[name] = [None] * len(flat)
                    first_key[name] = key
                values[i] = v
        columns: dict[str, pa.Array] = {}
        for name, values in by_name.items():
            if all(v is None for v in values) and name not in self.types:
                continue  # no type can be inferred yet; dlt drops such columns too
            for col, arr in self._column(name, first_key[name], values):
                columns[col] = _coalesce(columns.get(col), arr)
        return columns

    def _column(self, name: str, key: str, values: list[Any]) -> list[tuple[str, pa.Array]]:
        """Type a column's Python values, then place them as `_fit` does; values of several
        types are placed a type at a time."""
        want = self._want(name, key)
        if want is not None and all(v is None for v in values):
            return [(name, pa.nulls(len(values), want))]
        if want == _TS:
            ts = _timestamps(values)
            if ts is not None:
                return [(name, ts)]
        try:
            arr = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arr = None  # mixed types within the batch, or integers beyond int64
        if arr is not None and arr.type in _NAMES:
            return self._place(name, arr)
        types = [value_type(v) for v in values]
        out: dict[str, pa.Array] = {}
        for t in dict.fromkeys(t for t in types if t is not None):
            part = pa.array([as_stored(v) if vt == t else None for v, vt in zip(values, types)],
                            _DLT_TYPES[t])
            for col, a in self._place(name, part):
                out[col] = _coalesce(out.get(col), a)
        return list(out.items())

    def _want(self, name: str, key: str) -> pa.DataType | None:
        want = self.types.get(name)
        if want is None and key in TIMESTAMP_FIELDS:
            want = self.types[name] = _TS
        return want

    def _place(self, name: str, arr: pa.Array) -> list[tuple[str, pa.Array]]:
        """`arr` (of one of the _NAMES types) into column `name` where the column's type holds
        its values exactly, the rest into the variant column for its type. Never an unsafe
        cast: pyarrow would silently truncate 2.5 into a BIGINT column as 2, and round
        9007199254740993 into a DOUBLE one."""
        want = self.types.setdefault(name, arr.type)
        if arr.type == want:
            return [(name, arr)]
        if want == pa.float64() and arr.type == pa.int64():
            big = pc.fill_null(pc.greater(pc.abs(arr), EXACT_IN_DOUBLE), False)
            if not pc.any(big).as_py():
                return [(name, arr.cast(want))]
            exact = pc.if_else(big, pa.scalar(None, pa.int64()), arr).cast(want)
            return [(name, exact), self._variant(name, pc.if_else(big, arr, None))]
        if want == _TS and pa.types.is_string(arr.type):
            parsed = [_timestamps([v]) if v is not None else None for v in arr.to_pylist()]
            ts = pa.array([p[0].as_py() if p is not None else None for p in parsed], _TS)
            rest = pa.array([v if v is not None and p is None else None
                             for v, p in zip(arr.to_pylist(), parsed)], pa.string())
            return [(name, ts), self._variant(name, rest)]
        return [self._variant(name, arr)]

    def _variant(self, name: str, arr: pa.Array) -> tuple[str, pa.Array]:
        variant = f"{name}__v_{_NAMES[arr.type]}"  # dlt's naming
        self.types.setdefault(variant, arr.type)
        return variant, arr


def _coalesce(have: pa.Array | None, new: pa.Array) -> pa.Array:
    """Two partial arrays of one column (values of two types placed in it) as one."""
    return new if have is None else pc.coalesce(have, new)
