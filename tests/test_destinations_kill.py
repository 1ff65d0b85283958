"""A SIGKILL during the load, then one rerun, is exact on PostgreSQL and on Delta tables too.

The pipeline script runs as a separate process (tests/pipeline_job.py) and kills itself right
after the destination committed a load job of `events` and before dlt recorded it: the next run
replays that job, and the replayed rows must not stay twice. (DuckDB: test_reliability_kill.py.)
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from pipeline_job import Job
from warehouse import Warehouse, assert_equals_truth

SIZE = {"contacts": 60, "events": 600}
TABLES = ("contacts", "events", "segments", "segment_memberships", "webhook_deliveries")


@pytest.mark.parametrize("kind", ["postgres", "delta"])
def test_killed_after_a_committed_job_then_one_rerun_is_exact(
        kind: str, make_sim, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url") if kind == "postgres" else None
    sim = make_sim(**SIZE)
    job = Job(tmp_path, sim, destination=kind, postgres_url=url)
    proc = job.start(after_commit_of="events")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    r = job.run()
    assert r.returncode == 0, r.stderr[-3000:]
    wh = Warehouse(tmp_path / "reader", sim, name="kill_wh", dataset="growthos",
                   destination=kind, postgres_url=url)
    wh.lake = tmp_path / "lake"
    for table in TABLES:
        assert_equals_truth(wh, table)
    assert wh.duplicate_rows() == {}
