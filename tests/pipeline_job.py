"""The pipeline script (`pipelines/growthos_pipeline.py`) as a scheduler runs it: a separate
process, configured only through the environment, against a local server of the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hangs import run_to_end

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "pipelines" / "growthos_pipeline.py"
DB_NAME = "kill_wh"


# Runs the pipeline script unchanged, but dies by SIGKILL inside dlt's load step just after a
# job of table $KILL_AFTER_COMMIT_OF was committed by the destination and before dlt noted it.
KILL_AFTER_COMMIT = """
import os, runpy, signal, sys
from dlt.common.storages.load_package import PackageStorage
target, original = os.environ["KILL_AFTER_COMMIT_OF"], PackageStorage.save_pending_transition
def save_pending_transition(self, load_id, file_name, *args, **kwargs):
    if file_name.split(".")[0] == target:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, load_id, file_name, *args, **kwargs)
PackageStorage.save_pending_transition = save_pending_transition
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class Job:
    """The pipeline script, run again and again on one working directory and DuckDB file."""

    def __init__(self, tmp: Path, sim: Any, destination: str = "duckdb",
                 postgres_url: str | None = None) -> None:
        """`destination`: duckdb (the file tmp/kill_wh.duckdb), postgres (`postgres_url`) or
        delta (Delta tables under tmp/lake)."""
        self.tmp, self.sim, self.destination = tmp, sim, destination
        self.data_dir = tmp / "dlt"
        self.workdir = self.data_dir / "pipelines" / "growthos"
        info = sim.info()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SOURCES__", "DESTINATION__", "RUNTIME__"))}
        env.update({
            "SOURCES__GROWTHOS__BASE_URL": sim.base_url,
            "SOURCES__GROWTHOS__API_KEY": "gos_sk_test_local",
            "SOURCES__GROWTHOS__WAITLIST_IDS": json.dumps(info["waitlist_ids"]),
            "SOURCES__GROWTHOS__FUNNEL_IDS": json.dumps(info["funnel_ids"]),
            "SOURCES__GROWTHOS__COHORT_IDS": json.dumps(info["cohort_ids"]),
            "SOURCES__GROWTHOS__PAGE_SIZE": "50",
            # ~6 event windows: the backfill is one chunk (the mid-backfill test sets more).
            "SOURCES__GROWTHOS__EVENTS_WINDOW_DAYS": "120",
            "DLT_DATA_DIR": str(self.data_dir),
            "DESTINATION__DUCKDB__CREDENTIALS": str(tmp / f"{DB_NAME}.duckdb"),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
        })
        if postgres_url:
            env["DESTINATION__POSTGRES__CREDENTIALS"] = postgres_url
        env["DESTINATION__FILESYSTEM__BUCKET_URL"] = (tmp / "lake").as_uri()
        self.args = ["--progress", "none", "--destination", destination]
        self.env = env
        self.log: list[str] = []

    def start(self, after_commit_of: str | None = None) -> subprocess.Popen[str]:
        """Start the script. With `after_commit_of`, the script SIGKILLs itself right after the
        destination committed the first load job of that table, before dlt recorded the job
        as done: the narrow window that makes dlt run the job again on the next run."""
        if after_commit_of is None:
            cmd = [sys.executable, str(SCRIPT), *self.args]
            env = self.env
        else:
            cmd = [sys.executable, "-c", KILL_AFTER_COMMIT, str(SCRIPT), *self.args]
            env = {**self.env, "KILL_AFTER_COMMIT_OF": after_commit_of}
        return subprocess.Popen(cmd, cwd=self.tmp, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def run(self, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the script to its end (a hang fails with its threads' stacks: hangs.py)."""
        cmd = [sys.executable, str(SCRIPT), *self.args]
        done = run_to_end(cmd, cwd=self.tmp, env=self.env, timeout=timeout)
        self.log.append(f"run -> {done.returncode}")
        return done

    # ---- where is the run? -------------------------------------------------------------------
    def _ids(self, *parts: str) -> list[Path]:
        d = self.workdir.joinpath(*parts)
        return [p for p in d.iterdir() if p.is_dir()] if d.is_dir() else []

    def extracting(self) -> bool:
        storage = self.workdir / "normalize"
        if not storage.is_dir():
            return False
        return any(self._ids("normalize", d.name) for d in storage.iterdir()
                   if d.is_dir() and d.name != "extracted")

    def normalizing(self) -> bool:
        return bool(self._ids("normalize", "extracted"))

    def loading(self, jobs_done: int = 1) -> bool:
        """A package is being loaded and at least `jobs_done` of its jobs completed."""
        for p in self._ids("load", "normalized"):
            done = p / "completed_jobs"
            if done.is_dir() and len(list(done.iterdir())) >= jobs_done:
                return True
        return False

    def loaded_count(self) -> int:
        return len(self._ids("load", "loaded"))

    def newly_loaded(self, before: set[Path], table: str | None) -> bool:
        """A package not in `before` was loaded (with a job of `table`, if given)."""
        for p in set(self._ids("load", "loaded")) - before:
            if table is None or any(f.name.startswith(table + ".")
                                    for f in (p / "completed_jobs").iterdir()):
                return True
        return False

    def kill_when(self, stage: str, delay: float = 0.0, jobs_done: int = 1,
                  table: str | None = None) -> str:
        """Start the script, SIGKILL it once `stage` is reached (plus `delay` s). Returns what
        was pending when it died (for the test's record). `jobs_done`: for "load", how many jobs
        of the package completed; `table`: for "loaded", a table the package must have."""
        before = set(self._ids("load", "loaded"))
        cond: dict[str, Callable[[], bool]] = {
            "extract": self.extracting, "normalize": self.normalizing,
            "load": lambda: self.loading(jobs_done),
            "loaded": lambda: self.newly_loaded(before, table)}
        proc = self.start()
        deadline = time.monotonic() + 120
        while not cond[stage]():
            assert proc.poll() is None, f"the run ended before reaching {stage}: " \
                                        f"{proc.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, f"{stage} never reached"
            time.sleep(0.002)
        if delay:
            time.sleep(delay)
        seen = [s for s, f in (("extract", self.extracting), ("normalize", self.normalizing),
                               ("load", self.loading)) if f()]
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        self.log.append(f"killed at {stage}+{delay}s (pending: {seen})")
        return ",".join(seen)
