"""/contacts is walked in created_after/created_before windows, several at once.

Real HTTP to the local server, real dlt pipelines and DuckDB files, compared with /_sim/truth.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import control
from warehouse import Warehouse, assert_equals_truth


def _requests(sim: object) -> int:
    return int(control(sim, "GET", "stats").json().get("requests", 0))


def test_windows_cover_every_contact_once_at_little_extra_cost(
        make_sim, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sim = make_sim(contacts=3000, events=100, latency_ms=2)
    wh = Warehouse(tmp_path, sim)
    caplog.set_level("DEBUG", logger="growthos_source")  # one line per request sent
    before = _requests(sim)
    wh.sync(resources=("contacts",), workers=4)
    used = _requests(sim) - before
    urls = [r.getMessage() for r in caplog.records if r.getMessage().startswith("GET /contacts ")]
    windowed = [u for u in urls if "'created_after':" in u]
    assert len(windowed) >= 10  # 4 workers x 4 windows, all but the first with a lower bound
    assert_equals_truth(wh, "contacts")
    dupes = wh.query("SELECT COUNT(*) - COUNT(DISTINCT id) FROM {ds}.contacts")[0][0]
    assert dupes == 0
    # The whole list is 30 pages; windows add at most one partial page each, plus the search
    # for where creation history starts (~2*log2(days) one-row requests).
    assert used <= math.ceil(3000 / 100) + 16 + 30, used


def test_windowed_walk_still_detects_deletes_and_new_contacts(make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=800, events=100)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts",), workers=4)
    did = control(sim, "POST", "mutate", json={
        "advance": "1d", "contacts": {"delete": 4, "create": 25, "update": 10}}).json()
    gone = set(did["contacts"]["delete"])
    result = wh.sync(resources=("contacts",), workers=4)
    assert result.deletes_applied["contacts"] == len(gone)
    marked = {r[0] for r in wh.query("SELECT id FROM {ds}.contacts WHERE _deleted_at IS NOT NULL")}
    assert marked == gone
    assert_equals_truth(wh, "contacts")


def test_a_contact_without_created_at_is_never_marked_deleted_by_a_windowed_walk(
        make_sim, tmp_path: Path) -> None:
    """A windowed walk cannot see a record without created_at; such warehouse rows are left
    alone rather than marked deleted."""
    sim = make_sim(contacts=400, events=100)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts",), workers=4)
    did = control(sim, "POST", "mutate", json={"advance": "1h", "contacts": {"delete": 2}}).json()
    gone = sorted(did["contacts"]["delete"])
    with wh.pipeline.sql_client() as c:
        c.execute_sql(f"UPDATE {c.make_qualified_table_name('contacts')} SET created_at = NULL "
                      f"WHERE id = '{gone[0]}'")
    wh.sync(resources=("contacts",), workers=4)
    marked = {r[0] for r in wh.query("SELECT id FROM {ds}.contacts WHERE _deleted_at IS NOT NULL")}
    assert marked == {gone[1]}
