"""What an EventFeed (prefetch.py) holds: pages packed while they wait, and each planned window
with what has been read of it."""

from __future__ import annotations

import datetime as dt
import pickle
import zlib
from collections import deque
from typing import Any

Row = dict[str, Any]
# A page read ahead waits pickled and compressed, a small part of its dicts' size, so the buffer
# can hold the seconds of pages that cover a chunk's tail and dlt's normalize and load between
# two runs: a full buffer stops every worker reading ahead (sizes: docs/performance.md).
# Pickle, not JSON: exact for every value the client can have parsed; it never leaves this
# process. zlib at level 1: cheap, and outside the interpreter lock.
Packed = bytes
_LEVEL = 1
Bounds = tuple[dt.datetime, dt.datetime | None]


def pack(rows: list[Row]) -> Packed:
    """A page's rows as compressed pickle bytes (see `Packed`)."""
    return zlib.compress(pickle.dumps(list(rows), protocol=pickle.HIGHEST_PROTOCOL), _LEVEL)


def unpack(packed: Packed) -> list[Row]:
    """The rows `pack` packed."""
    rows: list[Row] = pickle.loads(zlib.decompress(packed))
    return rows


class Chunk:
    """One planned window and what has been read of it."""

    def __init__(self, bounds: Bounds, top: dt.datetime) -> None:
        self.bounds = bounds
        self.top = top
        self.buffer: deque[tuple[int, Packed]] = deque()  # (rows, the packed page)
        self.jobs = 0  # walks running (the first one and its splits)
        self.started = False
        self.active = False  # the current run consumes it
        self.cancelled = False

    @property
    def finished(self) -> bool:
        return self.started and self.jobs == 0
