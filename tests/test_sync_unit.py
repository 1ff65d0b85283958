"""Unit tests of the process settings sync() changes while it runs, and puts back after."""

from __future__ import annotations

import gc

import pyarrow as pa
import pytest

from growthos_source.runtime import GC_THRESHOLD, arrow_on_the_c_allocator, fewer_gc_passes


def test_arrow_allocates_from_the_c_library_during_a_sync_and_not_after() -> None:
    before = pa.default_memory_pool().backend_name
    kept = pa.array(["x"] * 1000)  # allocated from the pool in use before
    with arrow_on_the_c_allocator():
        assert pa.default_memory_pool().backend_name == "system"
        during = pa.array(["y"] * 1000)
    assert pa.default_memory_pool().backend_name == before
    assert kept.to_pylist()[:1] == ["x"] and during.to_pylist()[:1] == ["y"]


def test_the_allocator_comes_back_after_a_failure() -> None:
    before = pa.default_memory_pool().backend_name
    with pytest.raises(RuntimeError), arrow_on_the_c_allocator():
        raise RuntimeError("boom")
    assert pa.default_memory_pool().backend_name == before


def test_the_gc_runs_less_often_during_a_sync_only() -> None:
    before = gc.get_threshold()
    with fewer_gc_passes():
        assert gc.get_threshold()[0] == max(before[0], GC_THRESHOLD)
    assert gc.get_threshold() == before
