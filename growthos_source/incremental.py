"""Incremental cursors kept in dlt resource state: a high-water mark per key (per parent for
child lists) plus the ids seen at exactly that mark, so a record sharing the mark's timestamp is
neither lost nor loaded twice. State stays small: one value and a handful of ids per key.

The state lives in `dlt.current.resource_state()`, which dlt commits atomically with the load
package: a run that fails before its package is committed leaves the previous marks untouched.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
# The shape the API documents for its timestamps (`2026-02-20T14:22:00.123Z`), repeated: one
# match over a page's joined timestamps checks them all at C speed.
_MS_STAMPS = re.compile(r"(?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)*", re.ASCII)


def ts_key(value: Any) -> str:
    """A timestamp as a sortable string `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC).

    The API promises ISO 8601 UTC but not a precision; comparing raw strings would order
    `...:00Z` after `...:00.5Z`. The common shapes are handled without a full parse.
    """
    if isinstance(value, dt.datetime):  # a warehouse's value: no text round trip
        return parse_ts(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    s = str(value)
    if len(s) == 24 and s[-1] == "Z" and s[19] == ".":
        return s[:23] + "000Z"
    if len(s) == 20 and s[-1] == "Z":
        return s[:19] + ".000000Z"
    d = parse_ts(s)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def uniform_ms(values: list[Any]) -> bool:
    """True if every value is a `YYYY-MM-DDTHH:MM:SS.mmmZ` string (what `ts_key` reads as is)."""
    try:
        joined = "".join(values)
    except TypeError:
        return False
    # Each value 24 characters long, so the blocks the pattern matches are the values.
    return set(map(len, values)) == {24} and _MS_STAMPS.fullmatch(joined) is not None


def parse_ts(value: Any) -> dt.datetime:
    """Parse an ISO 8601 date or date-time (naive means UTC) into an aware UTC datetime."""
    if isinstance(value, dt.datetime):
        d = value
    elif isinstance(value, dt.date):
        d = dt.datetime(value.year, value.month, value.day)
    else:
        s = str(value).strip().replace("Z", "+00:00").replace("z", "+00:00")
        d = dt.datetime.fromisoformat(s)
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return d.astimezone(dt.timezone.utc)


def iso_z(d: dt.datetime) -> str:
    """Format an aware datetime as the API does: `2026-02-20T14:22:00.123Z`."""
    d = d.astimezone(dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


class Cursor:
    """Filters records newer than the saved mark for one key and advances the mark.

    `start`/`end` bound what is loaded at all (start_date/end_date: a backfill window; `end` is
    exclusive). Call `commit()` once the walk completed to persist the new mark.
    """

    def __init__(self, store: MutableMapping[str, Any], key: str, field: str,
                 start: str | None = None, end: str | None = None,
                 id_field: str = "id") -> None:
        self._store, self._key, self.field, self.id_field = store, key, field, id_field
        saved = store.get(key)
        self.last: str | None = saved[0] if saved else None
        self._boundary: set[str] = set(saved[1]) if saved else set()
        self.start = ts_key(start) if start else None
        self.end = ts_key(end) if end else None
        self.max = self.last
        self.max_ids: set[str] = set(self._boundary)

    @property
    def low(self) -> str | None:
        """The earliest value still wanted (the saved mark, or the start date)."""
        if self.last and (not self.start or self.last >= self.start):
            return self.last
        return self.start

    def rewind(self, since: str) -> None:
        """Accept again every record from `since` on (a lookback behind the saved mark),
        including those at the mark already read; the mark itself only moves forward."""
        self.last, self._boundary = None, set()
        key = ts_key(since)
        self.start = key if self.start is None or key > self.start else self.start

    def accept(self, row: dict[str, Any]) -> bool:
        v = ts_key(row[self.field])
        if self.end is not None and v >= self.end:
            return False
        if self.start is not None and v < self.start:
            return False
        rid = str(row.get(self.id_field))
        if self.last is not None and (v < self.last or (v == self.last and rid in self._boundary)):
            return False
        if self.max is None or v > self.max:
            self.max, self.max_ids = v, {rid}
        elif v == self.max:
            self.max_ids.add(rid)
        return True

    def filter(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows to load, advancing the mark: the whole page at once when `accept_all`
        can tell (nearly every page), else row by row."""
        rows = rows if isinstance(rows, list) else list(rows)
        if self.accept_all(rows):
            return list(rows)
        return [r for r in rows if self.accept(r)]

    def accept_all(self, rows: Sequence[dict[str, Any]]) -> bool:
        """Accept a whole page at once if every row would be accepted, as nearly every page of
        a backfill is: all timestamps in the documented millisecond shape (such strings sort as
        their instants, so the page's least and greatest decide), within `start`/`end`, newer
        than the saved mark. Otherwise change nothing and return False: `filter` then decides
        row by row."""
        stamps: list[Any] = [r.get(self.field) for r in rows]
        if not stamps or not uniform_ms(stamps):
            return False
        lo, hi = min(stamps), max(stamps)
        klo, khi = lo[:23] + "000Z", hi[:23] + "000Z"
        if ((self.end is not None and khi >= self.end)
                or (self.start is not None and klo < self.start)
                or (self.last is not None and klo <= self.last)):
            return False
        at_hi = {str(r.get(self.id_field)) for r, s in zip(rows, stamps) if s == hi}
        if self.max is None or khi > self.max:
            self.max, self.max_ids = khi, at_hi
        elif khi == self.max:
            self.max_ids |= at_hi
        return True

    def commit(self) -> None:
        if self.max is not None:
            self._store[self._key] = [self.max, sorted(self.max_ids)]
