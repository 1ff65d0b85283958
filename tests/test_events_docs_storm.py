"""The event stream is exact after every sync from the docs dialect (whole-second timestamps)
under the mixed fault storm: many events share a second, so walks restarted by faults resume at
second precision and window edges fall inside busy seconds.

Real HTTP to the local server with faults on, real dlt pipelines, real DuckDB files.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import control, truth
from test_reliability_faults import STORM_SYNC, STORMS, set_faults
from warehouse import Warehouse, norm

FIELDS = ("id", "timestamp", "contact_id", "user_id")


def _assert_events_exact(wh: Warehouse, sim: Any) -> None:
    got = wh.rows("events", FIELDS)
    ids = Counter(r[0] for r in got)
    assert not [i for i, n in ids.items() if n > 1], "duplicate event ids"
    want = {tuple(norm(r[f]) for f in FIELDS) for r in truth(sim, "events")}
    have = {tuple(norm(v) for v in r) for r in got}
    assert not want - have, f"{len(want - have)} events missing or changed"
    assert not have - want, f"{len(have - want)} events not in the API"


@pytest.mark.parametrize("seeds", [(5, 6), (6, 5), (11, 12)])
def test_second_sync_under_storm_is_exact_at_whole_seconds(make_sim, tmp_path: Path,
                                                           seeds: tuple[int, int]) -> None:
    sim = make_sim(dialect="docs", contacts=120, events=1200)
    cfg = STORMS["mixed"][0]
    set_faults(sim, seed=seeds[0], **cfg)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts", "events"), **STORM_SYNC)
    _assert_events_exact(wh, sim)
    control(sim, "POST", "mutate", json={"advance": "1d"}).raise_for_status()
    set_faults(sim, seed=seeds[1], **cfg)
    wh.sync(resources=("contacts", "events"), **STORM_SYNC)
    _assert_events_exact(wh, sim)
