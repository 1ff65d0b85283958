"""Where a backfill process spends its time: before its first request, between its first and
last, after its last one.

    python benchmarks/connector_phases.py [--plan scale] [--latency-ms 50] [--events 150000]
        [--runs 2] [--baseline DIR] [--backfill-windows N]

Starts the local server with that plan and latency, then runs `growthos-sync backfill
--start-date <first event's day> --resources events` as its own process (as
connector_matrix.py does), with wall-clock marks: modules imported, the pipeline made, sync()
started, the first request sent, the last answer read, the run ledger's load, exit; and the
number of dlt runs. `--baseline DIR` alternates each run with one of the connector imported from
DIR (another checkout). Import time alone: `python -X importtime -c 'import growthos_source.cli'`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The child (the command itself) imports none of the benchmarks' modules: common.py puts this
# checkout first on sys.path, and a baseline's child must import the connector from its DIR.
HERE = Path(__file__).resolve()


# ---- the child: the command with marks -------------------------------------------------------
def child(argv: list[str]) -> int:
    t0 = time.perf_counter()
    marks: dict[str, float] = {}
    seen = {"requests": 0, "last": 0.0, "runs": 0}

    def mark(name: str) -> None:
        marks.setdefault(name, time.perf_counter() - t0)

    from growthos_source import cli

    mark("imported")
    import httpx
    from dlt.pipeline.pipeline import Pipeline

    from growthos_source import ledger
    from growthos_source.cli import common, run_cmd

    send = httpx.HTTPTransport.handle_request

    def counted_send(self: Any, request: Any) -> Any:
        mark("first request")
        seen["requests"] += 1
        try:
            return send(self, request)
        finally:
            seen["last"] = time.perf_counter() - t0

    httpx.HTTPTransport.handle_request = counted_send  # type: ignore[method-assign]
    run = Pipeline.run

    def counted_run(self: Any, *a: Any, **kw: Any) -> Any:
        seen["runs"] += 1
        return run(self, *a, **kw)

    Pipeline.run = counted_run  # type: ignore[method-assign]
    make = common.pipeline

    def made(*a: Any, **kw: Any) -> Any:
        p = make(*a, **kw)
        mark("pipeline made")
        return p

    common.pipeline = made  # type: ignore[assignment]
    sync = run_cmd.sync

    def started(*a: Any, **kw: Any) -> Any:
        mark("sync() started")
        return sync(*a, **kw)

    run_cmd.sync = started  # type: ignore[assignment]
    write = ledger.write

    def ledger_write(*a: Any, **kw: Any) -> Any:
        marks["last answer"] = seen["last"]
        mark("ledger start")
        try:
            return write(*a, **kw)
        finally:
            mark("ledger end")

    ledger.write = ledger_write  # type: ignore[assignment]
    sys.argv = ["growthos-sync", *argv]
    rc = int(cli.main())
    marks.setdefault("last answer", seen["last"])
    mark("exit")
    print("PHASES " + json.dumps({**marks, "requests": seen["requests"], "runs": seen["runs"]}),
          file=sys.stderr, flush=True)
    return rc


# ---- the parent ------------------------------------------------------------------------------
def run_once(srv: Any, day: str, code: str | None, windows: int | None) -> dict[str, Any]:
    from connector_matrix import project

    srv.reset()
    tmp = Path(tempfile.mkdtemp(prefix="gos_phases_"))
    try:
        env = project(tmp, srv.base_url)
        if code:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (code, env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, str(HERE), "--child", "backfill", "--start-date", day,
               "--resources", "events"]
        if windows is not None:
            cmd += ["--backfill-windows", str(windows)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True,
                              check=False, timeout=1800)
        wall = time.perf_counter() - t0
        line = [x for x in proc.stderr.splitlines() if x.startswith("PHASES ")]
        if proc.returncode or not line:
            raise SystemExit(f"the command failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        out: dict[str, Any] = json.loads(line[-1][len("PHASES "):])
        out["wall"] = wall
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def row(name: str, ms: list[dict[str, Any]]) -> list[Any]:
    def med(f: Any) -> float:
        return statistics.median(f(m) for m in ms)

    return [name, len(ms), med(lambda m: m["wall"]), med(lambda m: m["imported"]),
            med(lambda m: m["sync() started"]), med(lambda m: m["first request"]),
            med(lambda m: m["last answer"] - m["first request"]),
            med(lambda m: m["exit"] - m["last answer"]),
            med(lambda m: m.get("ledger end", 0) - m.get("ledger start", 0)),
            int(med(lambda m: m["requests"])), int(med(lambda m: m["runs"]))]


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2:])
    from common import Server, machine, table
    from connector_matrix import CONTACTS, first_day
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", default="scale", choices=["free", "growth", "scale"])
    p.add_argument("--latency-ms", type=int, default=50)
    p.add_argument("--events", type=int, default=150_000)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--baseline", metavar="DIR")
    p.add_argument("--backfill-windows", type=int)
    args = p.parse_args()
    print(f"machine: {machine()}", flush=True)
    results: dict[str, list[dict[str, Any]]] = {"ours": [], "baseline": []}
    with Server(plan=args.plan, latency_ms=args.latency_ms, contacts=CONTACTS,
                events=args.events) as srv:
        day = first_day(srv)
        for i in range(args.runs):
            for name, code in (("ours", None), ("baseline", args.baseline)):
                if name == "baseline" and not args.baseline:
                    continue
                print(f"running: {name} {i + 1}/{args.runs} ...", flush=True)
                results[name].append(run_once(srv, day, code, args.backfill_windows))
    table(["contender", "runs", "wall s", "imported s", "sync() s", "1st request s",
           "requests s", "after last s", "ledger s", "requests", "dlt runs"],
          [row(n, ms) for n, ms in results.items() if ms],
          title=f"Backfill process phases (medians; seconds from process start): "
                f"{args.events:,} events, plan {args.plan}, {args.latency_ms} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
