"""`_growthos_runs`: one row per run and table, exact against what the server saw and the
truth, on DuckDB and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import pytest
from conftest import control, truth
from warehouse import Warehouse

from growthos_source import sync

TABLES = ("contacts", "events")
FAULTS = {"seed": 3, "error_rate": 0.06, "rate_limit_rate": 0.06, "retry_after_s": 1}


def _warehouse(kind: str, tmp: Path, sim: Any, request: pytest.FixtureRequest) -> Warehouse:
    wh = Warehouse(tmp, sim)
    if kind == "postgres":
        url = request.getfixturevalue("postgres_url")
        wh.pipeline = dlt.pipeline(pipeline_name="ledger_pg", pipelines_dir=str(tmp / "pg"),
                                   destination=dlt.destinations.postgres(url),
                                   dataset_name=wh.dataset)
    return wh


def _ledger(wh: Warehouse) -> list[dict[str, Any]]:
    with wh.pipeline.sql_client() as c:
        name = c.make_qualified_table_name("_growthos_runs")
        cols = ["run_id", "table_name", "status", "rows_loaded", "rows_rejected", "requests",
                "retries", "throttled_429", "rate_limit_wait_seconds", "mark_before",
                "mark_after", "load_ids", "error", "started_at", "finished_at"]
        rows = c.execute_sql(f"SELECT {', '.join(cols)} FROM {name} ORDER BY started_at, "
                             "table_name")
    return [dict(zip(cols, r)) for r in rows]


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_ledger_counts_rows_requests_retries_and_rejects(kind: str, make_sim, tmp_path: Path,
                                                          request: pytest.FixtureRequest) -> None:
    sim = make_sim(contacts=60, events=300)
    wh = _warehouse(kind, tmp_path, sim, request)
    control(sim, "PUT", "faults", json=FAULTS)
    before = control(sim, "GET", "stats").json()
    sync(wh.pipeline, wh.source(max_attempts=8, backoff_base=0.01,
                                backoff_max=0.05).with_resources(*TABLES))
    seen = control(sim, "GET", "stats").json()
    control(sim, "PUT", "faults", json={})

    first = _ledger(wh)
    assert [r["table_name"] for r in first] == list(TABLES)
    assert len({r["run_id"] for r in first}) == 1
    by = {r["table_name"]: r for r in first}
    for t in TABLES:
        assert by[t]["status"] == "ok" and by[t]["error"] is None
        assert by[t]["rows_loaded"] == len(truth(sim, t)) and by[t]["rows_rejected"] == 0
        assert by[t]["mark_before"] is None and by[t]["mark_after"] is not None
        assert by[t]["started_at"] <= by[t]["finished_at"]
    marks = wh.pipeline.state["sources"]["growthos"]["marks"]
    assert by["events"]["mark_after"] == marks["events"]["all"][0]

    def delta(k: str) -> int:
        return int(seen.get(k, 0)) - int(before.get(k, 0))

    # Every request the server answered, every 429 it sent and every retry they caused.
    assert sum(r["requests"] for r in first) == delta("requests")
    throttled = delta("fault_rate_limit") + delta("rate_limited")
    assert throttled > 0 and sum(r["throttled_429"] for r in first) == throttled
    assert sum(r["retries"] for r in first) == throttled + delta("fault_error")
    # The 429s asked for waits (Retry-After: 1); concurrent 429s share one pause of the key.
    assert sum(r["rate_limit_wait_seconds"] for r in first) >= 0.9

    # A run with records that cannot be loaded: the rejects are counted per table.
    # (new_field after null_required: the newest event must have a timestamp, see the report.)
    did = control(sim, "POST", "quirks", json={"kinds": ["null_required", "new_field"],
                                                 "count": 2}).json()
    sync(wh.pipeline, wh.source().with_resources(*TABLES))
    second = {r["table_name"]: r for r in _ledger(wh)[2:]}
    for t in TABLES:
        assert second[t]["rows_rejected"] == len(did["null_required"][t]) == 2
        assert second[t]["mark_before"] == by[t]["mark_after"]
        assert second[t]["load_ids"] and second[t]["load_ids"] != by[t]["load_ids"]
