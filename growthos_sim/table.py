"""Keyset-ordered record tables: the storage behind every list endpoint.

A table keeps its live and soft-deleted records in one list ordered by (sort value, id). A cursor
is the key of the last record a page returned, so a walk never skips or repeats a record that
exists and is unchanged for the whole walk, whatever else is created, updated or deleted.
Sort values never change after insert (lists sort by creation time), so updates do not move
records. Each record's JSON is cached and rebuilt only when the record changes.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .util import freeze

Record = dict[str, Any]
Key = tuple[str, str]
Predicate = Callable[[Record], bool]


@dataclass
class Table:
    """Records of one resource (or of one parent's child list), ordered for keyset paging."""

    sort_field: str
    descending: bool = False
    id_field: str = "id"
    rows: dict[str, Record] = field(default_factory=dict)
    deleted: dict[str, str] = field(default_factory=dict)  # id -> deleted_at
    _keys: list[Key] = field(default_factory=list)
    _blobs: dict[str, bytes] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows) - len(self.deleted)

    def key_of(self, rec: Record) -> Key:
        return (str(rec[self.sort_field]), str(rec[self.id_field]))

    def insert(self, rec: Record) -> Record:
        """Add a record; ids are unique per table."""
        rid = rec[self.id_field]
        if rid in self.rows:
            raise KeyError(f"duplicate id {rid}")
        self.rows[rid] = rec
        key = self.key_of(rec)
        if not self._keys or key > self._keys[-1]:
            self._keys.append(key)
        else:
            bisect.insort(self._keys, key)
        return rec

    def bulk_load(self, recs: list[Record]) -> None:
        """Load many records at once (generation): one sort instead of many inserts."""
        for rec in recs:
            self.rows[rec[self.id_field]] = rec
        self._keys = sorted(self.key_of(r) for r in self.rows.values())

    def get(self, rid: str, *, include_deleted: bool = False) -> Record | None:
        rec = self.rows.get(rid)
        if rec is None or (rid in self.deleted and not include_deleted):
            return None
        return rec

    def touch(self, rid: str) -> None:
        """Forget the cached JSON of a record that was changed in place."""
        self._blobs.pop(rid, None)

    def soft_delete(self, rid: str, at: str) -> bool:
        if rid not in self.rows or rid in self.deleted:
            return False
        self.deleted[rid] = at
        return True

    def blob(self, rid: str) -> bytes:
        b = self._blobs.get(rid)
        if b is None:
            b = freeze(self.rows[rid])
            self._blobs[rid] = b
        return b

    def iter_live(self) -> Iterator[Record]:
        """Live records in list order."""
        keys = reversed(self._keys) if self.descending else iter(self._keys)
        for _, rid in keys:
            if rid not in self.deleted:
                yield self.rows[rid]

    def page(
        self, after: Key | None, limit: int, pred: Predicate | None = None,
        lo: Key | None = None, hi: Key | None = None,
    ) -> tuple[list[bytes], Key | None]:
        """One page of live records after key `after` in list order, within keys (lo, hi).

        Returns the JSON blobs and the key to continue from (None when the list is exhausted).
        """
        keys, deleted, rows = self._keys, self.deleted, self.rows
        out: list[bytes] = []
        last: Key | None = None
        if not self.descending:
            start = max(after or ("", ""), lo or ("", ""))
            n = len(keys) if hi is None else bisect.bisect_left(keys, hi)
            order = range(bisect.bisect_right(keys, start), n)
        else:
            order = range(len(keys) - 1 if after is None else bisect.bisect_left(keys, after) - 1,
                          -1, -1)
        for i in order:
            key = keys[i]
            rid = key[1]
            if rid in deleted or (pred is not None and not pred(rows[rid])):
                continue
            if len(out) == limit:
                return out, last
            out.append(self._blobs.get(rid) or self.blob(rid))
            last = key
        return out, None
