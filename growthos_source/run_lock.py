"""One run of a pipeline at a time.

Two runs of one pipeline (a nightly job that starts while yesterday's is still going, two
invocations by hand) extract from the same committed state: both read the same events and both
append them, or one fails on the warehouse's file lock and leaves a package extracted from stale
state for the next run to load. So `sync()` holds a lock on the pipeline's working directory for
the whole run; a second run exits at once with `RunInProgressError` (the pipeline script's exit
code `EXIT_LOCKED`), or waits up to `wait` seconds.

The lock is an advisory `flock` on `growthos_run.lock` in the working directory: the kernel
releases it when its holder dies, however it dies (SIGKILL, OOM, reboot), so a dead holder's
lock is taken over without any staleness guess. The file also records the holder's pid and start
time for the message and for `lock_state()` (`growthos-sync status`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from .errors import GrowthOSError

LOCK_FILE = "growthos_run.lock"
# EX_TEMPFAIL from sysexits.h: "try again later", distinct from a failed run's 1.
EXIT_LOCKED = 75
_POLL = 0.2  # seconds between attempts while waiting


class RunInProgressError(GrowthOSError):
    """Another run of the same pipeline holds the lock."""


@dataclass(frozen=True)
class LockState:
    """Whether a run of the pipeline is in progress, and whose."""

    held: bool
    pid: int | None = None
    since: dt.datetime | None = None


def _path(working_dir: str) -> str:
    return os.path.join(working_dir, LOCK_FILE)


def _holder(f: IO[str]) -> tuple[int | None, dt.datetime | None]:
    f.seek(0)
    try:
        data = json.loads(f.read() or "{}")
        return int(data["pid"]), dt.datetime.fromisoformat(data["since"])
    except (ValueError, KeyError, TypeError):
        return None, None  # written by nobody yet, or cut short by a crash


def lock_state(working_dir: str) -> LockState:
    """Is a run holding the lock of the pipeline in `working_dir`? (since when, which pid)"""
    path = _path(working_dir)
    if not os.path.exists(path):
        return LockState(False)
    with open(path, encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, since = _holder(f)
            return LockState(True, pid, since)
        fcntl.flock(f, fcntl.LOCK_UN)
    return LockState(False)


@contextmanager
def hold(working_dir: str, pipeline_name: str, wait: float = 0.0) -> Iterator[None]:
    """Hold the pipeline's run lock for the block. Raises RunInProgressError when another run
    holds it (after waiting up to `wait` seconds)."""
    os.makedirs(working_dir, exist_ok=True)
    # "a+": never truncates the holder's record before we own the lock
    f = open(_path(working_dir), "a+", encoding="utf-8")  # noqa: SIM115  (held for the block)
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _in_progress(f, pipeline_name, wait) from None
                time.sleep(_POLL)
        since = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "since": since.isoformat()}))
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
    finally:
        f.close()


def _in_progress(f: IO[str], pipeline_name: str, wait: float) -> RunInProgressError:
    pid, since = _holder(f)
    when = since.isoformat().replace("+00:00", "Z") if since else "an unknown time"
    waited = f" (waited {wait:g} s)" if wait > 0 else ""
    return RunInProgressError(
        f"another run of pipeline {pipeline_name} is in progress since {when}, pid "
        f"{pid if pid is not None else 'unknown'}{waited}; this run loaded nothing. Let it "
        "finish, or wait for it with --wait-for-lock SECONDS")
