"""What the command prints: quiet by default, everything in a log file.

The console gets the warnings a person should act on, one summary table at the end and, on
failure, one `error:` line last. Retries, dlt's own log lines and tracebacks go to the log file
(`growthos-sync.log` in dlt's data folder, or `--log-file`), and also to the console with `-v`.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

# Lines a user cannot act on: the client retries on its own and the summary reports the count;
# dlt lists every column that was null in a load, which for this API is most runs.
_CHATTER = ("retry ", "did not receive any data during this load")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Console(logging.Handler):
    """Warnings and errors that matter, to stderr, one line each."""

    def __init__(self, stream: TextIO, verbose: bool) -> None:
        super().__init__(logging.DEBUG if verbose else logging.WARNING)
        self._stream, self._verbose = stream, verbose

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if not self._verbose:
                # dlt's own errors (a worker thread's failure, a failed job) precede the
                # exception the command reports as its `error:` line: the log file has them.
                if record.name.startswith("dlt") and record.levelno >= logging.ERROR:
                    return
                if any(c in message for c in _CHATTER):
                    return
                if record.exc_info:  # the traceback behind the `error:` line: log file only
                    return
            self._stream.write(f"{record.levelname.lower()}: {' '.join(message.split())}\n")
        except Exception:  # noqa: BLE001  logging must never fail the run
            self.handleError(record)


class _Router(logging.Handler):
    """The handler dlt finds on its logger and keeps (dlt reuses the first handler of the
    `dlt` logger and only swaps its formatter): sends each record to the file and console."""

    def __init__(self, targets: list[logging.Handler]) -> None:
        super().__init__(logging.DEBUG)
        self._targets = targets

    def emit(self, record: logging.LogRecord) -> None:
        for t in self._targets:
            if record.levelno >= t.level:
                t.handle(record)


def setup_logging(log_file: Path, verbose: bool) -> None:
    """Route `growthos_source`, `dlt` and Python warnings to the log file and the console."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    file = logging.FileHandler(log_file, encoding="utf-8")
    file.setLevel(logging.INFO)
    file.setFormatter(logging.Formatter(FORMAT))
    console = _Console(sys.stderr, verbose)
    router = _Router([file, console])
    for name in ("growthos_source", "dlt"):
        log = logging.getLogger(name)
        log.handlers[:] = [router]
        log.propagate = False
        log.setLevel(logging.DEBUG if verbose else logging.INFO)
    root = logging.getLogger()
    root.handlers[:] = [router]
    root.setLevel(logging.WARNING)
    # dlt's log progress warns about psutil on every run; the memory figures it wants are not
    # shown by this command anyway.
    warnings.filterwarnings("ignore", message="psutil dependency is not installed")
    logging.captureWarnings(True)


def table(rows: Sequence[Mapping[str, Any]], columns: list[str]) -> str:
    """A plain text table, indented two spaces: a header, a rule, one line per row; numbers
    right-aligned."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows)
               for c in columns]

    def line(values: list[str]) -> str:
        return "  " + "  ".join(v.rjust(w) if n else v.ljust(w)
                                for v, w, n in zip(values, widths, numeric)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)
