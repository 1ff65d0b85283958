"""Run a command of ours to its end in a test; one that hangs fails with its threads' stacks.

A run that has not ended after `timeout` s is aborted with SIGABRT; with PYTHONFAULTHANDLER set
(as `run_to_end` sets it) Python prints every thread's stack on the way out, and the failure
shows them. No process is left behind, and the timeout stays below pytest's own (600 s), which
would otherwise end the test with only the test's stack.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["run_to_end", "with_stacks_on_abort"]


def with_stacks_on_abort(env: Mapping[str, str]) -> dict[str, str]:
    """`env` plus what makes Python print every thread's stack when aborted."""
    return {**env, "PYTHONFAULTHANDLER": "1"}


def run_to_end(cmd: Sequence[str], *, cwd: Path, env: Mapping[str, str],
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`cmd` run in `cwd` with `env`, its output captured as text; a hang fails the test."""
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=with_stacks_on_abort(env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGABRT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        raise AssertionError(f"{' '.join(cmd[:3])} did not end within {timeout:.0f} s; its "
                             f"threads:\n{err[-20000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
