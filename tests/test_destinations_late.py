"""Late events load exactly once on every destination: the lookback behind the mark, the
per-day count reconciliation and the replacement of re-read ranges (warehouse/stream.py) on
DuckDB, a real PostgreSQL server and Delta tables. Small sizes: one test per backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import control
from test_destinations import make_warehouse
from test_events_late import assert_events_exact, wh_events
from warehouse import DESTINATIONS


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_late_events_then_one_sync_equal_the_truth(kind: str, make_sim, tmp_path: Path,
                                                   request: pytest.FixtureRequest) -> None:
    sim = make_sim(contacts=60, events=800)
    wh = make_warehouse(kind, tmp_path, sim, request)
    wh.sync(resources=("events",))
    control(sim, "POST", "mutate", json={
        "advance": "2h", "events": {"create": 20, "late": {"3s": 2, "1h": 2, "1d": 2,
                                                            "30d": 2}}}).raise_for_status()
    result = wh.sync(resources=("events",))
    assert result.events["days_fixed"], result.events  # the 1d/30d ones are behind the lookback
    assert not result.events["still_different"], result.events
    assert_events_exact(wh_events(wh), sim)
    assert wh.query("SELECT COUNT(*) FROM {ds}._growthos_event_replacements")[0][0] == 0
