"""Records that cannot be loaded are reported, never dropped silently.

A record missing its primary key, or whose incremental field is missing or not a timestamp,
would fail the whole load (dlt refuses null keys) or corrupt the incremental mark. Such records
are kept out of their table and written to `_growthos_rejects` (table, id, reason, the record as
JSON) in the same load, and logged with table and id, so the run completes and nothing is lost.

A record is seen again by every run that walks it; `_growthos_rejects` merges on `reject_id`, a
hash of table, id and the record's JSON, so it holds one row per record *version* (`noticed_at`
is the last run that saw it). The record is stored whole; one beyond MAX_RECORD_CHARS (more
than most warehouses take in one value) is stored as a JSON object that says so and keeps the
start of the text, so `record` always parses.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

import dlt
import orjson

from . import values
from .endpoints import Endpoint
from .incremental import ts_key, uniform_ms
from .keys import ascii_keys

logger = logging.getLogger("growthos_source")

REJECTS_TABLE = "_growthos_rejects"
MAX_RECORD_CHARS = 8_000_000
Row = dict[str, Any]


def check(ep: Endpoint, rows: Iterable[Row], noticed_at: str,
          cursor_field: str | None = None, rename_keys: bool = True,
          ) -> tuple[list[Row], list[Row]]:
    """Split `rows` into (loadable, rejects); rejects are `_growthos_rejects` rows.

    Loadable rows get non-ASCII keys renamed (keys.py) and their values kept exact for dlt's
    row normalizer (values.py) unless `rename_keys` is False (the arrow path does both while
    it builds its columns)."""
    cursor_field = cursor_field if cursor_field is not None else ep.cursor
    rows = rows if isinstance(rows, list) else list(rows)
    aside: list[Row] = []
    if _ASIDE.get(ep.table):
        rows, aside = _set_aside(ep, rows, noticed_at, cursor_field)
    if aside:
        loadable, rejected = check(ep, rows, noticed_at, cursor_field, rename_keys)
        return loadable, rejected + aside
    if keys_present(ep, rows) and (
            not cursor_field or uniform_ms([r.get(cursor_field) for r in rows])):
        # Nearly every page is plainly good: no row of it can be a reject.
        if not rename_keys:
            return list(rows), []
        plain = [ascii_keys(r) for r in rows]
        values.guard_for(ep.table).rows(plain)
        return plain, []
    good: list[Row] = []
    bad: list[Row] = []
    for row in rows:
        reason = _problem(ep, row, cursor_field)
        if reason is None:
            good.append(ascii_keys(row) if rename_keys else row)
            continue
        rid = row.get(ep.primary_key[-1]) if isinstance(row, dict) else None
        bad.append(reject_row(ep.table, rid, reason, row, noticed_at))
        logger.warning("%s: record %s not loaded: %s (kept in %s)", ep.table, rid, reason,
                       REJECTS_TABLE)
    if rename_keys:
        values.guard_for(ep.table).rows(good)
    return good, bad


# table -> {record id -> {"version": cursor value or None, "reason": ...}}: records the
# warehouse refused, set aside by `growthos-sync reset --pending` (warehouse/refusals.py).
_ASIDE: dict[str, dict[str, dict[str, Any]]] = {}


def use_set_aside(entries: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The set-aside records of the pipeline about to run (replaces any earlier ones)."""
    _ASIDE.clear()
    _ASIDE.update(entries)


def _set_aside(ep: Endpoint, rows: list[Row], noticed_at: str, cursor_field: str | None,
               ) -> tuple[list[Row], list[Row]]:
    """(rows to check as usual, rejects of the set-aside records still at the refused
    version)."""
    entries = _ASIDE[ep.table]
    keep: list[Row] = []
    out: list[Row] = []
    for row in rows:
        rid = row.get(ep.primary_key[-1]) if isinstance(row, dict) else None
        entry = entries.get(str(rid)) if rid is not None else None
        if entry is not None and _same_version(entry.get("version"),
                                               row.get(cursor_field) if cursor_field else None):
            reason = f"refused by the warehouse, set aside: {entry.get('reason')}"
            out.append(reject_row(ep.table, rid, reason, row, noticed_at))
            logger.warning("%s: record %s not loaded: %s (kept in %s)", ep.table, rid, reason,
                           REJECTS_TABLE)
        else:
            keep.append(row)
    return keep, out


def _same_version(refused: Any, now: Any) -> bool:
    if refused is None or now is None:
        return refused is None
    try:
        return bool(ts_key(refused) == ts_key(now))
    except (TypeError, ValueError):
        return str(refused) == str(now)


def reject_row(table: str, rid: Any, reason: str, record: Any, noticed_at: str) -> Row:
    """One `_growthos_rejects` row (see the module docstring)."""
    text = orjson.dumps(record, default=str).decode()
    record_id = None if rid is None else str(rid)
    version = hashlib.blake2b(
        orjson.dumps([table, record_id, text]), digest_size=16).hexdigest()
    if len(text) > MAX_RECORD_CHARS:
        text = orjson.dumps({"_truncated": True, "chars": len(text),
                             "head": text[: MAX_RECORD_CHARS // 2]}).decode()
    return {"reject_id": version, "table_name": table, "record_id": record_id,
            "reason": reason, "record": text, "noticed_at": noticed_at}


def keys_present(ep: Endpoint, rows: list[Any]) -> bool:
    """True if every row is an object holding all its primary key fields (what `check` asks
    first), checked a field at a time across the rows rather than row by row."""
    try:
        for key in ep.primary_key:
            values = [r.get(key) for r in rows]
            if None in values or "" in values:
                return False
    except AttributeError:  # a row that is not an object
        return False
    return True


def _problem(ep: Endpoint, row: Any, cursor_field: str | None) -> str | None:
    if not isinstance(row, dict):
        return f"not a JSON object: {type(row).__name__}"
    for key in ep.primary_key:
        if row.get(key) in (None, ""):
            return f"primary key field '{key}' is missing"
    if cursor_field:
        value = row.get(cursor_field)
        if value is None:
            return f"incremental field '{cursor_field}' is missing"
        try:
            ts_key(value)
        except (TypeError, ValueError):
            return f"incremental field '{cursor_field}' is not an ISO 8601 timestamp: {value!r:.60}"
    return None


def hinted(rows: list[Row]) -> Any:
    """Rejects as an item for the `_growthos_rejects` table (yield it from any resource)."""
    return dlt.mark.with_hints(rows, dlt.mark.make_hints(
        table_name=REJECTS_TABLE, write_disposition="merge", primary_key=["reject_id"],
        merge_key=[],
        columns=[{"name": "reject_id", "data_type": "text", "nullable": False},
                 {"name": "table_name", "data_type": "text", "nullable": False},
                 {"name": "record_id", "data_type": "text", "nullable": True},
                 {"name": "reason", "data_type": "text", "nullable": False},
                 {"name": "record", "data_type": "text", "nullable": False},
                 {"name": "noticed_at", "data_type": "timestamp", "nullable": False}]),
        create_table_variant=True)
