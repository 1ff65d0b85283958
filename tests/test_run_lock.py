"""Runs of one pipeline never collide: a second run exits at once (or waits), a dead holder's
lock is taken over, and overlapping invocations of the real pipeline script end in an exact
copy without one duplicate row.

The lock tests hold the lock from another process (a real `flock`, as a second run would see);
the overlap test runs `pipelines/growthos_pipeline.py` twice against a local server.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dlt
import pytest
from conftest import control
from pipeline_job import Job
from warehouse import Warehouse, assert_equals_truth

from growthos_source import sync
from growthos_source.run_lock import EXIT_LOCKED, RunInProgressError, hold, lock_state

HOLDER = """
import sys, time
from growthos_source.run_lock import hold
with hold(sys.argv[1], "growthos"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def start_holder(workdir: Path, seconds: float = 60) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_is_refused_at_once_naming_the_holder(tmp_path: Path) -> None:
    holder = start_holder(tmp_path)
    try:
        state = lock_state(str(tmp_path))
        assert state.held and state.pid == holder.pid and state.since is not None
        assert state.since <= dt.datetime.now(dt.timezone.utc)
        started = time.monotonic()
        with pytest.raises(RunInProgressError) as err, hold(str(tmp_path), "growthos"):
            pass
        assert time.monotonic() - started < 1.0
        msg = str(err.value)
        assert msg.startswith("another run of pipeline growthos is in progress since ")
        assert f"pid {holder.pid}" in msg and "\n" not in msg
    finally:
        holder.kill()
        holder.wait()


def test_waiting_run_starts_when_the_holder_ends(tmp_path: Path) -> None:
    holder = start_holder(tmp_path, seconds=0.8)
    try:
        with hold(str(tmp_path), "growthos", wait=30):
            state = lock_state(str(tmp_path))
            assert state.held and state.pid == os.getpid()
        assert holder.wait(timeout=10) == 0
        assert not lock_state(str(tmp_path)).held
    finally:
        holder.kill()
        holder.wait()


def test_waiting_gives_up_after_the_wait(tmp_path: Path) -> None:
    holder = start_holder(tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(RunInProgressError, match=r"waited 0.5 s"), \
                hold(str(tmp_path), "growthos", wait=0.5):
            pass
        assert 0.5 <= time.monotonic() - started < 3
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holders_lock_is_taken_over(tmp_path: Path) -> None:
    holder = start_holder(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert not lock_state(str(tmp_path)).held  # the kernel released it with the process
    with hold(str(tmp_path), "growthos"):
        assert lock_state(str(tmp_path)).pid == os.getpid()


def test_sync_holds_the_lock_and_a_locked_sync_loads_nothing(make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=30, events=100)
    wh = Warehouse(tmp_path, sim)
    holder = start_holder(Path(wh.pipeline.working_dir))
    try:
        with pytest.raises(RunInProgressError):
            wh.sync(resources=("contacts",))
        assert not Path(wh.db).exists() or "contacts" not in wh.tables()
    finally:
        holder.kill()
        holder.wait()
    wh.sync(resources=("contacts",))
    assert_equals_truth(wh, "contacts")
    assert not lock_state(wh.pipeline.working_dir).held


@pytest.mark.parametrize("gap", [0.0, 2.5])
def test_overlapping_runs_then_one_final_run_are_exact(make_sim, tmp_path: Path,
                                                       gap: float) -> None:
    """Two invocations `gap` s apart with a day of changes between them, then one more run:
    whichever of the two takes the lock first runs, the other exits with EXIT_LOCKED having
    loaded nothing (or runs normally if the first had finished), and the copy is exact.

    With no gap the two processes race for the lock, so either may win: the guarantee is that
    at most one of them is refused and neither fails."""
    sim = make_sim(contacts=100, events=1000)
    control(sim, "PUT", "faults", json={"latency_ms": 20}).raise_for_status()
    job = Job(tmp_path, sim)
    first = job.start()
    time.sleep(gap)
    control(sim, "POST", "mutate", json={"advance": "1d", "contacts": {
        "create": 4, "update": 6, "delete": 2}, "events": {"create": 100}}).raise_for_status()
    second = job.start()
    outputs = [second.communicate(timeout=300), first.communicate(timeout=300)]
    codes = [second.returncode, first.returncode]
    assert codes.count(EXIT_LOCKED) <= 1, outputs
    for code, (out, err) in zip(codes, outputs, strict=True):
        if code == EXIT_LOCKED:
            assert "another run of pipeline growthos is in progress since" in err
            assert "Loaded" not in out
        else:
            assert code == 0, err[-2000:]
    if gap:  # the first had seconds of head start: it must have been the one that ran
        assert first.returncode == 0
    control(sim, "PUT", "faults", json={}).raise_for_status()
    final = job.run()
    assert final.returncode == 0, final.stderr[-2000:]
    wh = Warehouse(tmp_path, sim, name="kill_wh", dataset="growthos")
    for table in ("contacts", "events", "segments", "survey_responses", "webhook_deliveries"):
        assert_equals_truth(wh, table)
    assert wh.duplicate_rows() == {}


def test_an_events_package_from_stale_state_adds_no_duplicates(make_sim,
                                                               tmp_path: Path) -> None:
    """What overlapping runs left before the lock existed: a package extracted from the state
    before another run loaded the same events. Finishing it must not append them again."""
    sim = make_sim(contacts=20, events=400)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("events",))
    # the stale package: the same events extracted by a run that started from empty state
    stale = dlt.pipeline(pipeline_name="growthos_test", pipelines_dir=str(tmp_path / "stale"),
                         destination=dlt.destinations.duckdb(wh.db), dataset_name=wh.dataset)
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    stale.extract(wh.source().with_resources("events"), loader_file_format="parquet")
    stale.normalize()
    (load_id,) = stale.list_normalized_load_packages()
    target = Path(wh.pipeline.working_dir) / "load" / "normalized"
    target.mkdir(parents=True, exist_ok=True)
    shutil.move(str(Path(stale.working_dir) / "load" / "normalized" / load_id), str(target))

    wh2 = Warehouse(tmp_path, sim)  # a new process's view of the same working directory
    result = sync(wh2.pipeline, wh2.source().with_resources("events"))
    assert result.recovered_pending
    assert_equals_truth(wh2, "events")
    assert wh2.duplicate_rows() == {}
    loads = wh2.query("SELECT COUNT(DISTINCT _dlt_load_id) FROM {ds}.events")[0][0]
    assert loads == 1  # the stale package's copies are the ones that went
