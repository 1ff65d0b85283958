"""The event stream: up to millions of events kept as JSON bytes in (timestamp, id) order.

Events are the one table too big to keep as Python dicts (a nested event costs ~3 KB as dicts,
~0.7 KB as JSON), so they are stored column-wise: parallel lists sorted by (timestamp, id), plus
a per-contact index. Events are immutable except for a contact merge, which rewrites the
reassigned events' JSON.

An event's `timestamp` is the client's (the Ingest API accepts past timestamps, mobile SDKs send
offline events days later), so an event can land anywhere in the stream, not only at its end.
That is why nothing here remembers list positions: positions shift on every insert in the middle.
Everything that points into the stream points at a key (timestamp, id) instead:

- page cursors are keyset cursors on (timestamp, id), so a cursor handed out before an insert
  still means "everything older than this event": a walk already under way sees an event
  inserted below its cursor and never sees one inserted above it (that one is newer than the
  walk's start, as a brand-new event would be);
- the per-contact index holds each contact's keys, not positions.

Appends at the end stay O(1). One insert in the middle costs a `list.insert` per column (a
memmove, O(n)); a burst of them is spliced in with one pass of list slices per column instead
(O(n + k), in C), so thousands of late events at once cost about what one does.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from .util import freeze, iso_date, loads

EventKey = tuple[int, str]
Row = tuple[int, str, str, str, bytes]  # (ts_ms, id, contact_id, event name, JSON)
_COLUMNS = ("ts", "ids", "contact", "name", "blob")
# From this many rows at once, splicing (one pass per column) beats one memmove per row.
_SPLICE_FROM = 8


def _index(ts: list[int], ids: list[str], t: int, eid: str, lo: int = 0,
           hi: int | None = None) -> int:
    """Where key (t, eid) is, or would be inserted, in parallel lists sorted by (ts, id)."""
    hi = len(ts) if hi is None else hi
    i = bisect.bisect_left(ts, t, lo, hi)
    j = bisect.bisect_right(ts, t, i, hi)
    return bisect.bisect_left(ids, eid, i, j)


class ContactKeys:
    """One contact's event keys, sorted by (timestamp, id) as two parallel lists (two pointers
    per event, no tuple per event: the index of a million events stays small)."""

    __slots__ = ("ids", "ts")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, t: int, eid: str) -> None:
        if not self.ts or (t, eid) > (self.ts[-1], self.ids[-1]):
            self.ts.append(t)
            self.ids.append(eid)
            return
        i = _index(self.ts, self.ids, t, eid)
        self.ts.insert(i, t)
        self.ids.insert(i, eid)

    def keys(self) -> list[EventKey]:
        return list(zip(self.ts, self.ids))


class EventStore:
    """Column-wise event storage with newest-first keyset paging."""

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.ids: list[str] = []
        self.contact: list[str] = []
        self.name: list[str] = []
        self.blob: list[bytes] = []
        self.by_contact: dict[str, ContactKeys] = defaultdict(ContactKeys)
        # (date, event name) -> count: keeps POST /analytics/query cheap and exactly in step
        # with the rows it summarizes (UTC days, as the stream's timestamps).
        self.daily: dict[tuple[str, str], int] = defaultdict(int)

    def __len__(self) -> int:
        return len(self.ids)

    def load_sorted(self, rows: list[Row]) -> None:
        """Bulk add (ts_ms, id, contact_id, event, json) tuples at any timestamps, sorting them
        once (the seed's history, a burst of late events)."""
        rows.sort(key=lambda r: (r[0], r[1]))
        if not rows:
            return
        if not self.ts or (rows[0][0], rows[0][1]) > (self.ts[-1], self.ids[-1]):
            for r in rows:
                self._append(*r)
        elif len(rows) <= _SPLICE_FROM:
            for r in rows:
                self._insert(*r)
        else:
            self._splice(rows)

    def _splice(self, rows: list[Row]) -> None:
        """Insert many sorted rows into the middle: their positions in the old columns, then
        each column rebuilt once from slices."""
        ts, ids = self.ts, self.ids
        cuts = [_index(ts, ids, r[0], r[1]) for r in rows]
        for p, r in zip(cuts, rows):
            if p < len(ids) and ids[p] == r[1] and ts[p] == r[0]:
                raise ValueError(f"event {r[1]} is already stored")
            if p > 0 and ids[p - 1] == r[1] and ts[p - 1] == r[0]:
                raise ValueError(f"event {r[1]} is already stored")
        for col in range(5):
            old = (self.ts, self.ids, self.contact, self.name, self.blob)[col]
            new: list[Any] = []
            prev = 0
            for p, r in zip(cuts, rows):
                new += old[prev:p]
                new.append(r[col])
                prev = p
            new += old[prev:]
            setattr(self, _COLUMNS[col], new)
        for t, eid, contact_id, name, _ in rows:
            self.by_contact[contact_id].add(t, eid)
            self.daily[(iso_date(t), name)] += 1

    def _append(self, ts: int, eid: str, contact_id: str, name: str, blob: bytes) -> None:
        self.ts.append(ts)
        self.ids.append(eid)
        self.contact.append(contact_id)
        self.name.append(name)
        self.blob.append(blob)
        keys = self.by_contact[contact_id]
        keys.ts.append(ts)
        keys.ids.append(eid)
        self.daily[(iso_date(ts), name)] += 1

    def _insert(self, ts: int, eid: str, contact_id: str, name: str, blob: bytes) -> None:
        if not self.ts or (ts, eid) > (self.ts[-1], self.ids[-1]):
            self._append(ts, eid, contact_id, name, blob)
            return
        p = _index(self.ts, self.ids, ts, eid)
        if p < len(self.ids) and self.ids[p] == eid and self.ts[p] == ts:
            raise ValueError(f"event {eid} is already stored")
        self.ts.insert(p, ts)
        self.ids.insert(p, eid)
        self.contact.insert(p, contact_id)
        self.name.insert(p, name)
        self.blob.insert(p, blob)
        self.by_contact[contact_id].add(ts, eid)
        self.daily[(iso_date(ts), name)] += 1

    def append(self, ts: int, eid: str, contact_id: str, name: str, event: dict[str, Any]) -> None:
        """Add one event at any timestamp (past ones land in the middle of the stream)."""
        self._insert(ts, eid, contact_id, name, freeze(event))

    def add_many(self, events: list[tuple[int, str, str, str, dict[str, Any]]]) -> None:
        """Add (ts_ms, id, contact_id, event name, event) tuples at any timestamps at once."""
        self.load_sorted([(t, eid, cid, name, freeze(ev)) for t, eid, cid, name, ev in events])

    def position(self, key: EventKey) -> int | None:
        """The stream position of the event with this key, or None."""
        p = _index(self.ts, self.ids, key[0], key[1])
        if p < len(self.ids) and self.ids[p] == key[1] and self.ts[p] == key[0]:
            return p
        return None

    def reassign(self, source: str, target: str, target_user_id: str | None) -> int:
        """Move every event of contact `source` to `target` (a merge). Returns the count."""
        moved = self.by_contact.pop(source, None)
        if moved is None:
            return 0
        ts, ids = self.ts, self.ids
        for t, eid in zip(moved.ts, moved.ids):
            pos = _index(ts, ids, t, eid)
            ev = loads(self.blob[pos])
            ev["contact_id"] = target
            ev["user_id"] = target_user_id
            self.blob[pos] = freeze(ev)
            self.contact[pos] = target
        if source != target:
            keys = self.by_contact[target]
            merged = sorted(keys.keys() + moved.keys())
            keys.ts = [k[0] for k in merged]
            keys.ids = [k[1] for k in merged]
        else:
            self.by_contact[target] = moved
        return len(moved)

    def _start(self, after: EventKey | None, hi: int) -> int:
        """Index of the first event to return (walking down) for cursor `after`."""
        if after is None:
            return hi - 1
        return min(_index(self.ts, self.ids, after[0], after[1]), hi) - 1

    def page(
        self,
        after: EventKey | None,
        limit: int,
        *,
        from_ms: int | None = None,
        to_ms: int | None = None,
        event: str | None = None,
        contact_id: str | None = None,
    ) -> tuple[list[bytes], EventKey | None]:
        """Newest-first page of events in [from_ms, to_ms) after key `after`."""
        if contact_id is not None:
            return self._contact_page(contact_id, after, limit, from_ms, to_ms, event)
        lo = 0 if from_ms is None else bisect.bisect_left(self.ts, from_ms)
        hi = len(self.ts) if to_ms is None else bisect.bisect_left(self.ts, to_ms)
        out: list[bytes] = []
        last: EventKey | None = None
        i = self._start(after, hi)
        if event is None:
            # Unfiltered: the page is one slice of the stream (positions i down to `first`).
            first = max(lo, i - limit + 1)
            out = self.blob[first:i + 1]
            out.reverse()
            if first > lo:  # older events remain below this page
                return out, (self.ts[first], self.ids[first])
            return out, None
        names = self.name
        while i >= lo:
            p = i
            i -= 1
            if names[p] != event:
                continue
            if len(out) == limit:
                return out, last
            out.append(self.blob[p])
            last = (self.ts[p], self.ids[p])
        return out, None

    def _contact_page(self, contact_id: str, after: EventKey | None, limit: int,
                      from_ms: int | None, to_ms: int | None,
                      event: str | None) -> tuple[list[bytes], EventKey | None]:
        """The same page over one contact's keys (each looked up in the stream for its JSON)."""
        keys = self.by_contact.get(contact_id)
        if keys is None:
            return [], None
        kts, kids = keys.ts, keys.ids
        lo = 0 if from_ms is None else bisect.bisect_left(kts, from_ms)
        hi = len(kts) if to_ms is None else bisect.bisect_left(kts, to_ms)
        j = hi - 1 if after is None else min(_index(kts, kids, after[0], after[1]), hi) - 1
        out: list[bytes] = []
        last: EventKey | None = None
        ts, ids = self.ts, self.ids
        while j >= lo:
            t, eid = kts[j], kids[j]
            j -= 1
            p = _index(ts, ids, t, eid)
            if event is not None and self.name[p] != event:
                continue
            if len(out) == limit:
                return out, last
            out.append(self.blob[p])
            last = (t, eid)
        return out, None

    def iter_blobs(self) -> Iterator[bytes]:
        """Every event's JSON, newest first (the stream's order)."""
        return reversed(self.blob)
