"""`growthos-sync`: the connector as a command a scheduler runs.

    growthos-sync [sync]   [--resources a,b] [--start-date D] ...   the nightly job
    growthos-sync backfill --start-date D [--end-date D]             bounded history load
    growthos-sync reset TABLE...                                     reload tables from scratch
    growthos-sync reset --pending                                    set aside what the
                                                                     warehouse refuses
    growthos-sync status                                             marks, rows, last runs
    growthos-sync models                                             analytics views
    growthos-sync demo                                               local server -> DuckDB

Configuration comes from dlt's usual places: `--config-dir` (default `./.dlt` if present, else
dlt's global folder: `~/.dlt`, `/var/dlt` as root), then the environment
(SOURCES__GROWTHOS__API_KEY, SOURCES__GROWTHOS__BASE_URL, DESTINATION__DUCKDB__CREDENTIALS,
DLT_DATA_DIR). Exit codes: 0 done, 1 failed (one `error:` line), 2 bad usage, 75 another run
of the pipeline is in progress (try again later), 130 interrupted.
"""

from __future__ import annotations

import os

# These machines may have no internet; dlt's telemetry is off unless the user turns it on.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import argparse
import atexit
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import dlt

from ..cli_errors import one_line
from ..run_lock import EXIT_LOCKED, RunInProgressError
from . import common, demo_cmd, reset_cmd, run_cmd, status_cmd
from .config_dir import use_config_dir
from .output import setup_logging

logger = logging.getLogger("growthos_source")
LOG_NAME = "growthos-sync.log"
COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "sync": ("sync every table (the nightly job; the default)", run_cmd.cmd_sync),
    "backfill": ("load a bounded stretch of history without moving the nightly marks",
                 run_cmd.cmd_backfill),
    "reset": ("drop tables and their marks so the next sync reloads them", reset_cmd.cmd_reset),
    "status": ("per table: last successful run, mark, rows, lag; runs in progress",
               status_cmd.cmd_status),
    "models": ("create the analytics views over the loaded tables (docs/sql-models.md)",
               lambda args: _models(args)),
    "demo": ("start the local GrowthOS server and sync it into growthos_demo.duckdb",
             demo_cmd.cmd_demo),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="growthos-sync", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, func) in COMMANDS.items():
        s = sub.add_parser(name, help=help_text, description=help_text)
        common.add_common(s)
        if name in ("sync", "backfill"):
            run_cmd.add_sync_options(s, backfill=name == "backfill")
        if name == "reset":
            s.add_argument("tables", nargs="*", metavar="TABLE", help="tables to reload")
            s.add_argument("--pending", action="store_true",
                           help="clear a pending load package the warehouse refuses: its "
                                "refused records go to _growthos_rejects, the rest is read "
                                "again by the next sync")
        if name == "demo":
            s.add_argument("--progress", default="none", choices=["none", "log"])
            s.add_argument("--models", action="store_true",
                           help="also create the analytics views in the demo warehouse")
            s.add_argument("--contacts", type=int, default=2000,
                           help="contacts in the demo data (default 2000)")
            s.add_argument("--events", type=int, default=20_000,
                           help="events in the demo data (default 20000)")
            s.set_defaults(pipeline_name="growthos_demo")  # apart from the nightly pipeline
        s.set_defaults(func=func)
    return p


def _models(args: argparse.Namespace) -> int:
    p = common.pipeline(args)
    p.sync_destination()  # a runner that starts empty: the schema from the warehouse
    common.print_models(p)
    return 0


def _normalize(argv: list[str]) -> list[str]:
    """`growthos-sync --resources x` means `sync --resources x`; `--demo` means `demo`."""
    if "--demo" in argv:
        return ["demo"] + [a for a in argv if a != "--demo"]
    named = [a for a in argv if a in COMMANDS]  # `--config-dir D status` too: no table has
    if named:                                   # a command's name
        i = argv.index(named[0])
        return [argv[i]] + argv[:i] + argv[i + 1:]
    if not argv or argv[0] not in ("-h", "--help"):
        return ["sync"] + argv
    return argv


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(_normalize(list(sys.argv[1:] if argv is None else argv)))
    use_config_dir(args.config_dir)
    log_file = Path(args.log_file) if args.log_file else \
        Path(dlt.current.run_context().data_dir) / LOG_NAME
    # GROWTHOS_LOG_LEVEL=DEBUG (what the pipeline script always honoured) means -v.
    args.verbose = args.verbose or os.environ.get("GROWTHOS_LOG_LEVEL", "").upper() == "DEBUG"
    setup_logging(log_file, args.verbose)
    logger.info("growthos-sync %s", " ".join(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("error: interrupted; the next run resumes from the last committed state",
              file=sys.stderr)
        return 130
    except RunInProgressError as exc:  # try again later: not a failed run
        print(f"error: {exc}", file=sys.stderr)
        return int(EXIT_LOCKED)
    except SystemExit:
        raise
    except BaseException as exc:
        logger.error("%s failed", args.command, exc_info=exc)
        where = "" if args.verbose else f" (details: {log_file})"
        print(f"error: {one_line(exc)}{where}", file=sys.stderr)
        return 1


def entry() -> None:
    """The `growthos-sync` console script: `main()`, then a quick exit.

    Once the command is done, tearing the interpreter down (every module of dlt, pyarrow,
    sqlglot, DuckDB freed one by one) takes another 0.4-0.7 s: a tenth of a small nightly
    run. Everything the command wrote is closed by then (warehouse connections and load
    packages are closed by the blocks that opened them); the exit handlers run, the log and
    the standard streams are flushed, and the process ends without the teardown, as mypy's
    command does.
    """
    code = main()
    atexit._run_exitfuncs()  # dlt's telemetry flush, when a user turned it on
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or gone (a pipe to `head`)
            pass
    os._exit(code)
