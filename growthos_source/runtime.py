"""Process settings while a `sync()` runs (sync.py): the garbage collector's pace and arrow's
memory pool. Each comes back as it was after the sync."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

# Allocations between two runs of the youngest generation's collection (CPython's default: 700).
GC_THRESHOLD = 100_000


@contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """A page becomes ~3,500 short-lived Python objects; with CPython's default thresholds the
    cyclic collector runs every 700 allocations and took ~10% of an unthrottled backfill. The
    pages hold no cycles (reference counting frees them), so it may run less often while a
    sync lasts; the old thresholds come back after it. Every pass walks all the young objects
    still alive, and an arrow batch keeps ~100 pages of them alive: at 10,000 allocations the
    passes still took ~0.4 s of a 4.5 s unthrottled backfill, at 100,000 about 0.02 s."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], GC_THRESHOLD), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


@contextmanager
def arrow_on_the_c_allocator() -> Iterator[None]:
    """pyarrow's default allocator (mimalloc) keeps memory its threads freed: arrow batches,
    the JSON reader's buffers and dlt's parquet writer raised a backfill's peak RSS by ~70 MB
    (connector_memory.py, 100,000 unthrottled events: 429 MB; 343-362 MB with the C library's
    allocator, as fast). Buffers remember their pool, so switching is safe."""
    old = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(old)
