"""The connector is exact on every destination it supports: DuckDB, a real PostgreSQL server
and Delta tables in a local `file://` bucket.

Real HTTP to the local server, real dlt pipelines, real warehouses; every check compares with
/_sim/truth through the warehouse's own client (tests/warehouse.py). Cases are chosen to cover
what differs between destinations (merges, both delete modes with cascades and nested tables,
the replayed-rows cleanup, faults) without a full suite per destination.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import control, truth
from warehouse import CHECKS, DESTINATIONS, Warehouse, assert_equals_truth

SIZE = {"contacts": 120, "events": 600}
DAY = {"advance": "1d", "contacts": {"create": 5, "update": 8, "delete": 3, "merge": 1},
       "segments": {"update": 1, "delete": 1}, "webhook_endpoints": {"delete": 1},
       "events": {"create": 80}, "survey_responses": {"create": 4},
       "waitlist_entries": {"create": 2, "update": 2}, "referral_links": {"create": 2},
       "campaigns": {"update": 2}}


def make_warehouse(kind: str, tmp: Path, sim: Any, request: pytest.FixtureRequest,
                   **kw: Any) -> Warehouse:
    url = request.getfixturevalue("postgres_url") if kind == "postgres" else None
    return Warehouse(tmp, sim, destination=kind, postgres_url=url, **kw)


def assert_exact(wh: Warehouse) -> None:
    for table in CHECKS:
        assert_equals_truth(wh, table)
    assert wh.duplicate_rows() == {}


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_sync_mutate_sync_with_both_delete_modes_is_exact(kind: str, make_sim, tmp_path: Path,
                                                          request: pytest.FixtureRequest) -> None:
    sim = make_sim(**SIZE)
    wh = make_warehouse(kind, tmp_path, sim, request)
    wh.sync(resources=tuple(CHECKS))
    assert_exact(wh)

    did = control(sim, "POST", "mutate", json=DAY).json()
    result = wh.sync(resources=tuple(CHECKS))
    gone = set(did["contacts"]["delete"]) | set(did["contacts"].get("merge", []))
    assert result.deletes_applied.get("contacts", 0) >= len(did["contacts"]["delete"])
    assert_exact(wh)
    marked = {r[0] for r in wh.query(
        "SELECT id FROM {ds}.contacts WHERE _deleted_at IS NOT NULL")}
    assert set(did["contacts"]["delete"]) <= marked
    vanished = {r["id"] for r in truth(sim, "contacts", include_deleted=True)
                if r.get("deleted_at")}
    assert marked <= vanished | gone
    # the cascade: deliveries of the deleted webhook endpoint are marked with it
    ep = did["webhook_endpoints"]["delete"][0]
    live = wh.query(f"SELECT COUNT(*) FROM {{ds}}.webhook_deliveries WHERE endpoint_id = "
                    f"'{ep}' AND _deleted_at IS NULL")[0][0]
    assert live == 0

    # deletes="remove": what vanishes next is erased with its nested rows
    did = control(sim, "POST", "mutate", json={"advance": "2h",
                                               "contacts": {"delete": 2}}).json()
    erased = set(did["contacts"]["delete"])
    result = wh.sync(resources=tuple(CHECKS), deletes="remove")
    assert result.deletes_applied.get("contacts") == len(erased)
    ids = {r[0] for r in wh.query("SELECT id FROM {ds}.contacts")}
    assert not erased & ids and marked <= ids
    orphans = wh.query("SELECT COUNT(*) FROM {ds}.contacts__tags t WHERE t._dlt_root_id NOT IN "
                       "(SELECT _dlt_id FROM {ds}.contacts)")
    assert orphans[0][0] == 0
    assert_exact(wh)
    # and a run with nothing new changes nothing
    again = wh.sync(resources=tuple(CHECKS))
    assert again.deletes_applied == {} and again.rows.get("events", 0) == 0
    assert_exact(wh)


MIXED = {"error_rate": 0.05, "rate_limit_rate": 0.05, "retry_after_s": 0,
         "disconnect_rate": 0.05, "truncate_rate": 0.05, "cursor_expiry_rate": 0.1,
         "latency_ms": 2}
PATIENT = {"max_attempts": 12, "backoff_base": 0.005, "backoff_max": 0.05, "page_size": 20,
           "events_window_days": 60}


@pytest.mark.parametrize("kind", [k for k in DESTINATIONS if k != "duckdb"])
def test_mixed_fault_storm_ends_exact(kind: str, make_sim, tmp_path: Path,
                                      request: pytest.FixtureRequest) -> None:
    """(DuckDB has its own storms in test_reliability_faults.py.)"""
    sim = make_sim(contacts=80, events=500)
    wh = make_warehouse(kind, tmp_path, sim, request)
    control(sim, "PUT", "faults", json=MIXED).raise_for_status()
    wh.sync(resources=tuple(CHECKS), **PATIENT)
    control(sim, "PUT", "faults", json={}).raise_for_status()
    control(sim, "POST", "mutate", json=DAY).raise_for_status()
    control(sim, "PUT", "faults", json=MIXED).raise_for_status()
    wh.sync(resources=tuple(CHECKS), **PATIENT)
    injected = control(sim, "GET", "stats").json()
    assert injected.get("fault_error", 0) and injected.get("fault_disconnect", 0), injected
    assert_exact(wh)
