"""Every value the API sent reaches the warehouse unchanged: one policy for both load paths.

Three things would change or lose values on the way, each handled here:

- **Numbers JSON can hold but int64 and doubles cannot.** JSON numbers have no size limit; orjson
  turns an integer beyond 64 bits into a rounded double and every decimal into a double, and an
  integer in 2^63..2^64 fails dlt's normalizer (and then every later run, on the pending
  package). A body with a long digit run is parsed by Python's `json` instead, which keeps
  integers exact; a decimal whose double would lose digits, and an integer outside int64, are
  kept as their exact text. Text, not DECIMAL: every destination has it, it has no precision
  limit (dlt's default DECIMAL(38,9) would cut `0.12345678901234567890123` to nine places), and
  it casts to any numeric type in SQL.
- **Keys that map to one column name** (`userId`/`user_id`, `a.b`/`a_b`/`a-b`, a key `x__y`
  beside a nested `x.y`, `id`/`id__`): dlt's normalizer keeps the last value and drops the
  others. When one record holds such keys, the one already in the column's form (else the first
  in sorted order) keeps the column; each other gets `<column>_k_<hash of its path>`, stable
  for the same key. A record with only one of them uses the plain column, as before.
- **Type flips.** dlt coerces a value into the column's existing type where it can: 7, 0.25 and
  "no" into a boolean column become True, True, False; "02134" into a BIGINT becomes 2134;
  9007199254740993 into a DOUBLE becomes 9007199254740992.0. A value is stored in a column only
  if that column's type holds it exactly (its own JSON type; an integer up to 2^53 in a DOUBLE;
  a string in a timestamp or date column, which dlt parses or sends to a variant itself);
  otherwise it goes to the variant column `<column>__v_<type>`, dlt's own naming.

A column's type is the one the schema holds from earlier runs (and from the document's column
declarations, columns.py), else the type of the first value seen in this run, which then claims
it; later values of another type go to variants, so the same data always lands the same way.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import lru_cache
from typing import Any

import dlt
from dlt.common.normalizers.naming import NamingConvention
from dlt.common.normalizers.naming.snake_case import NamingConvention as SnakeCase
from dlt.extract.exceptions import CurrentSourceSchemaNotAvailable

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EXACT_IN_DOUBLE = 2**53  # every integer up to this magnitude has its own double
# A number of 17+ characters of digits and dots (an integer that may exceed 64 bits, a decimal
# of 16+ digits, which a double may not hold) right after `:`, `,` or `[`: the page is mapped
# to a few byte classes (whitespace and signs dropped) and searched, both in C, at about a
# quarter of orjson's parse time (see docs/values.md). Strings can match too (rarely): those
# bodies merely take the exact, slower parse.
_CLASSES = bytearray(b" " * 256)
for _c in b"0123456789.":
    _CLASSES[_c] = ord("0")
for _c in b":,[":
    _CLASSES[_c] = ord(":")
_BYTE_CLASSES = bytes(_CLASSES)
_DROPPED = b" \t\r\n-+"
_LONG_NUMBER = b":" + b"0" * 17

Row = dict[str, Any]
ColumnOf = Callable[[tuple[str, ...]], str]


# ---- exact parsing ---------------------------------------------------------------------------
def needs_exact_parse(body: bytes) -> bool:
    """True if `body` may hold a number orjson would round (see the module docstring)."""
    return _LONG_NUMBER in body.translate(_BYTE_CLASSES, _DROPPED)


def _float_or_text(text: str) -> float | str:
    value = float(text)
    # The double's shortest form denotes the same number as the text: no digit was lost.
    return value if Decimal(repr(value)) == Decimal(text) else text


def _int_or_text(text: str) -> int | str:
    value = int(text)
    return value if INT64_MIN <= value <= INT64_MAX else text


def exact_json(body: bytes) -> Any:
    """`body` parsed with every number exact: integers beyond int64 and decimals a double
    cannot hold come back as their JSON text."""
    return json.loads(body, parse_float=_float_or_text, parse_int=_int_or_text)


# ---- types -------------------------------------------------------------------------------------
def value_type(value: Any) -> str | None:
    """dlt's data type for a scalar JSON value (None for null, objects and lists)."""
    t = type(value)
    if t is str:
        return "text"
    if t is bool:
        return "bool"
    if t is int:
        return "bigint" if INT64_MIN <= value <= INT64_MAX else "text"
    if t is float:
        return "double"
    return None


def as_stored(value: Any) -> Any:
    """The value as it is stored: an integer outside int64 as its exact text."""
    if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
        return str(value)
    return value


_TEXT_PARSED = ("timestamp", "date", "time")


def fits(column_type: str, vtype: str, value: Any) -> bool:
    """True if a column of `column_type` holds `value` (of dlt type `vtype`) exactly."""
    if column_type == vtype:
        return True
    if column_type == "double" and vtype == "bigint":
        return bool(abs(value) <= EXACT_IN_DOUBLE)
    if column_type in _TEXT_PARSED and vtype == "text":
        return True  # dlt parses it, or sends what does not parse to a variant column
    return column_type in ("decimal", "wei") and vtype == "bigint"


def variant(column: str, vtype: str) -> str:
    """dlt's name for the column holding `column`'s values of type `vtype`."""
    return f"{column}__v_{vtype}"


# ---- colliding keys ----------------------------------------------------------------------------
def _digest(path: tuple[str, ...]) -> str:
    return hashlib.blake2b("\x00".join(path).encode(), digest_size=4).hexdigest()


def _leaves(row: Row, path: tuple[str, ...], out: list[tuple[str, ...]]) -> None:
    for k, v in row.items():
        if isinstance(v, dict) and v:
            _leaves(v, (*path, k), out)
        else:
            out.append((*path, k))


def rename_collisions(row: Row, column_of: ColumnOf, normalize: Callable[[str], str]) -> bool:
    """Rename keys of `row` (in place) that would share a column with another key of it.
    Returns True if anything was renamed."""
    paths: list[tuple[str, ...]] = []
    _leaves(row, (), paths)
    if len(paths) < 2:
        return False
    by_column: dict[str, list[tuple[str, ...]]] = {}
    for p in paths:
        by_column.setdefault(column_of(p), []).append(p)
    if len(by_column) == len(paths):
        return False  # nearly every record: no two keys share a column
    changed = False
    for group in by_column.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda p: (not all(normalize(k) == k for k in p), p))
        for p in group[1:]:
            parent = row
            for k in p[:-1]:
                parent = parent[k]
            parent[f"{normalize(p[-1])}_k_{_digest(p)}"] = parent.pop(p[-1])
            changed = True
    return changed


# ---- the row path's guard ----------------------------------------------------------------------
class ValueGuard:
    """Keeps one table's rows exact for dlt's row normalizer (see the module docstring)."""

    def __init__(self, known: dict[str, str], naming: NamingConvention) -> None:
        self.types: dict[str, str] = dict(known)
        self._naming = naming
        self._normalize = lru_cache(maxsize=100_000)(naming.normalize_path)
        self._columns: dict[tuple[str, ...], str] = {}

    def column_of(self, path: tuple[str, ...]) -> str:
        """The column dlt makes of a key path (its `_flatten`: each key normalized as a path,
        the fragments joined)."""
        col = self._columns.get(path)
        if col is None:
            col = self._naming.shorten_fragments(*(self._normalize(k) for k in path))
            if len(self._columns) < 100_000:
                self._columns[path] = col
        return col

    def rows(self, rows: Iterable[Row]) -> None:
        """Make every row of `rows` exact in place."""
        for row in rows:
            rename_collisions(row, self.column_of, self._normalize)
            self._values(row, ())

    def _values(self, obj: Row, path: tuple[str, ...]) -> None:
        moved: list[tuple[str, str, Any]] = []
        for k, v in obj.items():
            if isinstance(v, dict):
                if v:
                    self._values(v, (*path, k))
                continue
            vtype = value_type(v)
            if vtype is None:
                continue  # null or a list (dlt's child table)
            col = self.column_of((*path, k))
            have = self.types.setdefault(col, vtype)
            if fits(have, vtype, v):
                if vtype == "text" and type(v) is int:
                    obj[k] = str(v)
                continue
            name = variant(self._normalize(k), vtype)
            self.types.setdefault(variant(col, vtype), vtype)
            moved.append((k, name, as_stored(v)))
        for k, name, v in moved:
            del obj[k]
            obj[name] = v


_GUARDS: weakref.WeakKeyDictionary[Any, dict[str, ValueGuard]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()
_FALLBACK: dict[str, ValueGuard] = {}


def guard_for(table: str) -> ValueGuard:
    """The guard of `table` for the source being extracted: its known types are the schema's
    columns (earlier runs and the declared ones) when the run started."""
    try:
        schema: Any = dlt.current.source_schema()
    except CurrentSourceSchemaNotAvailable:  # outside an extract (unit tests): default naming
        schema = None
    with _LOCK:
        if schema is None:
            guards = _FALLBACK
        else:
            guards = _GUARDS.setdefault(schema, {})
        guard = guards.get(table)
        if guard is None:
            columns = schema.tables.get(table, {}).get("columns", {}) if schema else {}
            known = {n: str(c["data_type"]) for n, c in columns.items() if c.get("data_type")}
            naming = schema.naming if schema is not None else SnakeCase()
            guard = guards[table] = ValueGuard(known, naming)
    return guard
