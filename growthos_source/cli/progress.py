"""`--progress`: how a long run shows where it is.

`none` (default): nothing until the summary. `log`: dlt's log lines and one line per backfill
chunk. `bar`: a bar of event windows done/total with rows/s and ETA, drawn by `rich` (the
`progress` extra); without rich, or when stderr is not a terminal, one line per chunk instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from ..sync import BackfillProgress

CHOICES = ["none", "log", "bar", "tqdm", "enlighten", "alive_progress"]


def dlt_collector(mode: str) -> Any:
    """The `progress=` argument for dlt.pipeline(), or None."""
    if mode == "log":
        from dlt.common.runtime.collector import LogCollector

        # dump_system_stats needs psutil, and warns on every run without it.
        return LogCollector(dump_system_stats=False)
    if mode in ("tqdm", "enlighten", "alive_progress"):
        return mode
    return None


class ChunkProgress:
    """Receives sync()'s BackfillProgress after each chunk; a context manager for the bar."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._bar: Any = None
        self._task: Any = None
        if mode == "bar" and sys.stderr.isatty():
            try:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeRemainingColumn,
                )
            except ImportError:
                print("note: --progress bar needs rich (pip install 'growthos-dlt[progress]'); "
                      "printing one line per chunk", file=sys.stderr)
            else:
                self._bar = Progress(TextColumn("events backfill"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("windows"),
                                     TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                     transient=True)

    def __enter__(self) -> Self:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def callback(self) -> Callable[[BackfillProgress], None] | None:
        return None if self.mode == "none" else self.update

    def update(self, p: BackfillProgress) -> None:
        if self._bar is None:
            print(str(p), file=sys.stderr, flush=True)
            return
        rate = f"{p.rows:,} rows, {p.rows_per_second:,.0f} rows/s"
        if self._task is None:
            self._task = self._bar.add_task("events", total=p.total, rate=rate)
        self._bar.update(self._task, completed=p.done, total=p.total, rate=rate)
