"""The event stream: up to millions of events kept as JSON bytes in timestamp order.

Events are the one table too big to keep as Python dicts (a nested event costs ~3 KB as dicts,
~0.7 KB as JSON), so they are stored column-wise: parallel lists sorted by (timestamp, id), plus
a per-contact index. Events are immutable except for a contact merge, which rewrites the
reassigned events' JSON. New events only ever arrive at the server clock, so appends keep order.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import Any, Iterator

from .util import freeze, iso_date, loads

EventKey = tuple[int, str]


class EventStore:
    """Column-wise event storage with newest-first keyset paging."""

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.ids: list[str] = []
        self.contact: list[str] = []
        self.name: list[str] = []
        self.blob: list[bytes] = []
        self.by_contact: dict[str, list[int]] = defaultdict(list)
        # (date, event name) -> count: keeps POST /analytics/query cheap and exactly in step
        # with the rows it summarizes.
        self.daily: dict[tuple[str, str], int] = defaultdict(int)

    def __len__(self) -> int:
        return len(self.ids)

    def load_sorted(self, rows: list[tuple[int, str, str, str, bytes]]) -> None:
        """Bulk load (ts_ms, id, contact_id, event, json) tuples, sorting them once."""
        rows.sort(key=lambda r: (r[0], r[1]))
        for r in rows:
            self._append(*r)

    def _append(self, ts: int, eid: str, contact_id: str, name: str, blob: bytes) -> None:
        pos = len(self.ids)
        self.ts.append(ts)
        self.ids.append(eid)
        self.contact.append(contact_id)
        self.name.append(name)
        self.blob.append(blob)
        self.by_contact[contact_id].append(pos)
        self.daily[(iso_date(ts), name)] += 1

    def append(self, ts: int, eid: str, contact_id: str, name: str, event: dict[str, Any]) -> None:
        """Add one new event; its timestamp must not be older than the newest stored one."""
        if self.ts and (ts, eid) < (self.ts[-1], self.ids[-1]):
            raise ValueError("events must arrive in timestamp order")
        self._append(ts, eid, contact_id, name, freeze(event))

    def reassign(self, source: str, target: str, target_user_id: str | None) -> int:
        """Move every event of contact `source` to `target` (a merge). Returns the count."""
        moved = self.by_contact.pop(source, [])
        for pos in moved:
            ev = loads(self.blob[pos])
            ev["contact_id"] = target
            ev["user_id"] = target_user_id
            self.blob[pos] = freeze(ev)
            self.contact[pos] = target
        if moved:
            merged = sorted(self.by_contact.get(target, []) + moved)
            self.by_contact[target] = merged
        return len(moved)

    def _start(self, after: EventKey | None, hi: int) -> int:
        """Index of the first event to return (walking down) for cursor `after`."""
        if after is None:
            return hi - 1
        i = bisect.bisect_left(self.ts, after[0])
        n = len(self.ts)
        while i < n and self.ts[i] == after[0] and self.ids[i] < after[1]:
            i += 1
        return min(i, hi) - 1

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
        lo = 0 if from_ms is None else bisect.bisect_left(self.ts, from_ms)
        hi = len(self.ts) if to_ms is None else bisect.bisect_left(self.ts, to_ms)
        out: list[bytes] = []
        last: EventKey | None = None
        if contact_id is not None:
            positions = self.by_contact.get(contact_id, [])
            start = self._start(after, hi)
            j = bisect.bisect_right(positions, start) - 1
            while j >= 0 and positions[j] >= lo:
                p = positions[j]
                j -= 1
                if event is not None and self.name[p] != event:
                    continue
                if len(out) == limit:
                    return out, last
                out.append(self.blob[p])
                last = (self.ts[p], self.ids[p])
            return out, None
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

    def iter_blobs(self) -> Iterator[bytes]:
        """Every event's JSON, newest first (the stream's order)."""
        return reversed(self.blob)
