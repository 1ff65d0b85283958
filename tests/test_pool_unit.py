"""A step that must start on dlt's thread (a warehouse read) finishes in dlt's pool
(readers/pool.py), so its walks do not hold up the tables behind it."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest

from growthos_source.readers.pool import ON_POOL, finish_on_pool


def test_items_before_the_marker_come_as_they_are_and_the_rest_as_calls() -> None:
    def step(items: Any) -> Iterator[Any]:
        yield "read on dlt's thread"
        yield ON_POOL
        yield [1, 2]
        yield [3]

    gen = finish_on_pool(step)("parent page")
    assert next(gen) == "read on dlt's thread"
    results = []
    for call in gen:  # as dlt does: run each call before asking for the next item
        assert callable(call)
        results.append(call())
    # the last call finds the step ended: None, which dlt drops
    assert results == [[1, 2], [3], None]


def test_while_a_call_runs_the_step_yields_none_and_errors_come_from_the_call() -> None:
    def step(items: Any) -> Iterator[Any]:
        yield ON_POOL
        raise ValueError("page 2 of referral_links")

    gen = finish_on_pool(step)(None)
    call = next(gen)
    assert next(gen) is None  # the call has not run yet: nothing more to hand out
    with pytest.raises(ValueError, match="referral_links"):
        call()


def test_closing_the_step_closes_what_it_wraps() -> None:
    closed = threading.Event()

    def step(items: Any) -> Iterator[Any]:
        try:
            yield ON_POOL
            yield [1]
        finally:
            closed.set()

    gen = finish_on_pool(step)(None)
    assert isinstance(gen, Generator)
    assert callable(next(gen))
    gen.close()
    assert closed.is_set()


def test_in_a_dlt_run_the_rest_runs_off_dlts_thread_and_others_go_on(tmp_path: Path) -> None:
    threads: dict[str, str] = {}
    other_started = threading.Event()

    @dlt.resource(selected=False)
    def parents() -> Iterator[list[dict[str, int]]]:
        yield [{"id": 1}]
        yield [{"id": 2}]

    def slow_child(items: Any) -> Iterator[Any]:
        threads["before"] = threading.current_thread().name
        yield ON_POOL
        threads["after"] = threading.current_thread().name
        # The first page's walk only ends once another table has had the parents' second
        # page: on dlt's thread it would wait in vain, since that thread reads the parents.
        if items[0]["id"] == 1:
            assert other_started.wait(timeout=20), "the other table never got page 2"
        yield [{"id": p["id"], "slow": True} for p in items]

    def other_child(items: Any) -> Iterator[Any]:
        if items[0]["id"] == 2:
            other_started.set()
        yield [{"id": p["id"], "other": True} for p in items]

    slow = dlt.transformer(finish_on_pool(slow_child), data_from=parents, name="slow")
    other = dlt.transformer(other_child, data_from=parents, name="other")
    pipeline = dlt.pipeline(pipeline_name="pool_unit", pipelines_dir=str(tmp_path / "p"),
                            destination=dlt.destinations.duckdb(str(tmp_path / "w.duckdb")),
                            dataset_name="d")
    pipeline.run([parents, slow, other])
    assert threads["before"] == threading.main_thread().name
    assert threads["after"] != threading.main_thread().name
    with pipeline.sql_client() as c:
        assert c.execute_sql("SELECT id, slow FROM slow ORDER BY id") == [(1, True), (2, True)]
        assert c.execute_sql("SELECT id, other FROM other ORDER BY id") == [(1, True), (2, True)]
