"""Killed runs resume without loss or duplicates.

The real job (`pipelines/growthos_pipeline.py`) runs as a separate process against a local
server started here, configured only through the environment, as a scheduler would run it. It is
killed with SIGKILL at chosen moments, found by watching the pipeline's working directory:

    extract    a new package is being written under normalize/<storage>/<load_id>
    normalize  the extracted package sits in normalize/extracted/<load_id>
    load       a package in load/normalized/<load_id> has some completed jobs
    loaded     a package reached load/loaded/<load_id> (after its load, before deletes apply)

Then the script runs once more: it must exit 0 and leave every table equal to the truth.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import control, truth
from pipeline_job import DB_NAME, Job
from warehouse import CHECKS, Warehouse, assert_equals_truth

from growthos_source.endpoints import BY_TABLE

SIZE = {"contacts": 100, "events": 1000}
# What the script loads with no options (opt-in tables such as contact_profiles are not).
TABLES = [t for t in CHECKS if not BY_TABLE[t].opt_in]
# The server answers slowly enough that an extract lasts a few seconds.
SLOW = {"latency_ms": 25}


def warehouse(tmp: Path, sim: Any) -> Warehouse:
    """A reader of the job's DuckDB file (its own pipeline object is never run)."""
    return Warehouse(tmp, sim, name=DB_NAME, dataset="growthos")


def assert_exact(tmp: Path, sim: Any) -> None:
    wh = warehouse(tmp, sim)
    for table in TABLES:
        assert_equals_truth(wh, table)


def assert_no_duplicate_rows(tmp: Path) -> None:
    """No row of any table (nested ones included) is in the warehouse twice."""
    wh = warehouse(tmp, None)
    for table in sorted(wh.tables()):
        cols = {r[0] for r in wh.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = '{ds}' "
            f"AND table_name = '{table}'")}
        key = "_dlt_id" if "_dlt_id" in cols else "id, _dlt_load_id" if "id" in cols else None
        if key is None or table.startswith("_dlt"):
            continue
        n, distinct = wh.query(f"SELECT COUNT(*), COUNT(DISTINCT ({key})) FROM {{ds}}.{table}")[0]
        assert n == distinct, f"{table}: {n - distinct} duplicate rows"


def final_run_is_exact(job: Job) -> None:
    r = job.run()
    assert r.returncode == 0, f"{job.log}\n{r.stderr[-3000:]}"
    assert_exact(job.tmp, job.sim)
    assert not job._ids("normalize", "extracted") and not job._ids("load", "normalized"), \
        "packages left pending after a successful run"
    assert_no_duplicate_rows(job.tmp)


@pytest.fixture
def job(make_sim, tmp_path: Path) -> Job:
    return Job(tmp_path, make_sim(**SIZE))


@pytest.mark.parametrize("stage", ["normalize", "load"])
def test_first_run_killed_then_one_rerun_is_exact(job: Job, stage: str) -> None:
    job.kill_when(stage)
    final_run_is_exact(job)


@pytest.mark.parametrize("table", [
    "events",  # append
    "segment_memberships",  # replace
    "contacts",  # merge (delete-insert), first load
])
def test_killed_after_a_job_committed_one_rerun_leaves_no_duplicate(job: Job,
                                                                     table: str) -> None:
    """dlt runs such a job again on the next run; its rows must not end up twice."""
    proc = job.start(after_commit_of=table)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    r = job.run()
    assert r.returncode == 0, r.stderr[-3000:]
    assert "removed rows duplicated by load jobs replayed after a crash" in r.stderr
    assert_exact(job.tmp, job.sim)
    assert_no_duplicate_rows(job.tmp)


def test_first_run_killed_mid_backfill_keeps_the_finished_chunks(job: Job) -> None:
    """A first run whose event backfill is split into chunks (of 8 windows) is killed while
    extracting a later chunk: the chunks already loaded stay loaded, and one rerun completes
    the copy."""
    job.env["SOURCES__GROWTHOS__EVENTS_WINDOW_DAYS"] = "3"
    control(job.sim, "PUT", "faults", json=SLOW).raise_for_status()
    proc = job.start()
    while job.loaded_count() < 2:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    wh = warehouse(job.tmp, job.sim)
    kept = wh.query("SELECT COUNT(*) FROM {ds}.events")[0][0]
    assert 0 < kept < SIZE["events"]
    control(job.sim, "PUT", "faults", json={}).raise_for_status()
    r = job.run()
    assert r.returncode == 0, r.stderr[-3000:]
    # The rerun read only the windows not loaded yet.
    read = {m[0]: int(m[1]) for m in re.findall(r"^\s+(\w+)\s+(\d+)$", r.stdout, re.MULTILINE)}
    assert read["events"] == SIZE["events"] - kept, r.stdout
    assert_exact(job.tmp, job.sim)
    assert_no_duplicate_rows(job.tmp)


def test_repeated_kills_with_changes_between_runs(job: Job) -> None:
    """After a complete first run: kills at every stage of incremental runs, with activity
    (creates, updates, soft deletes) between them; one more run makes the copy exact, deletes
    marked."""
    sim = job.sim
    assert job.run().returncode == 0
    control(sim, "POST", "mutate", json={"advance": "1d"}).raise_for_status()
    control(sim, "PUT", "faults", json=SLOW).raise_for_status()
    job.kill_when("extract", 0.3)
    control(sim, "PUT", "faults", json={}).raise_for_status()
    job.kill_when("load", jobs_done=3)
    did = control(sim, "POST", "mutate", json={
        "advance": "6h", "contacts": {"delete": 3, "update": 5},
        "webhook_endpoints": {"delete": 1}}).json()
    job.kill_when("normalize")
    # After the load of the package that noticed the deletions, before they are applied.
    job.kill_when("loaded", table="_growthos_deletions")
    control(sim, "POST", "mutate", json={"advance": "2h", "contacts": {"create": 4},
                                         "events": {"create": 50}}).raise_for_status()
    control(sim, "PUT", "faults", json=SLOW).raise_for_status()
    job.kill_when("extract", 0.5)
    control(sim, "PUT", "faults", json={}).raise_for_status()
    job.kill_when("load")
    final_run_is_exact(job)
    wh = warehouse(job.tmp, sim)
    marked = {r[0] for r in wh.query(
        "SELECT id FROM {ds}.contacts WHERE _deleted_at IS NOT NULL")}
    ever = {r[0] for r in wh.query("SELECT id FROM {ds}.contacts")}
    gone = {r["id"] for r in truth(sim, "contacts", include_deleted=True) if r.get("deleted_at")}
    assert set(did["contacts"]["delete"]) <= marked
    assert marked == gone & ever, job.log
    # A run after that changes nothing: the state committed with the packages is right.
    r = job.run()
    assert r.returncode == 0
    loaded = {m[0] for m in re.findall(r"^\s+(\w+)\s+(\d+)$", r.stdout, re.MULTILINE)}
    assert not loaded & {"contacts", "events", "survey_responses", "webhook_deliveries",
                         "segments", "campaigns"}, r.stdout
    assert_exact(job.tmp, sim)


def dlt_cli(job: Job, *args: str) -> subprocess.CompletedProcess[str]:
    """`dlt -y pipeline growthos ...` on the job's working directory, as the docs tell users."""
    cmd = [str(Path(sys.executable).parent / "dlt"), "-y", "pipeline", "--pipelines-dir",
           str(job.data_dir / "pipelines"), "growthos", *args]
    return subprocess.run(cmd, check=False, cwd=job.tmp, env=job.env, capture_output=True,
                          text=True, timeout=120)


def test_documented_recovery_commands(job: Job) -> None:
    """docs/reliability.md: `abort-packages` discards a half-loaded package (the next run
    re-extracts from the state before it), and `drop <table> --state-paths marks.<table>`
    reloads a table in full."""
    job.kill_when("load", jobs_done=3)
    r = dlt_cli(job, "abort-packages")
    assert r.returncode == 0 and "aborted" in r.stdout, r.stdout + r.stderr
    assert not job._ids("load", "normalized")
    final_run_is_exact(job)
    r = dlt_cli(job, "drop", "contacts", "--state-paths", "marks.contacts")
    assert r.returncode == 0, r.stdout + r.stderr
    r = job.run()
    assert r.returncode == 0, r.stderr[-3000:]
    read = {m[0]: int(m[1]) for m in re.findall(r"^\s+(\w+)\s+(\d+)$", r.stdout, re.MULTILINE)}
    assert read.get("contacts") == len(truth(job.sim, "contacts")), r.stdout
    assert_exact(job.tmp, job.sim)
