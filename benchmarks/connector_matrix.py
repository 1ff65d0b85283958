"""The event backfill as a user starts it, on every plan and at every distance from the API.

    python benchmarks/connector_matrix.py [--plans free,growth,scale] [--latencies 0,50,200,300]
        [--events free=50000,growth=250000,scale=500000] [--backfill-windows N]
        [--peer-cell scale:50] [--peer-events 20000] [--skip-peer] [--baseline DIR] [--profile]

For each plan x latency cell it starts `python -m growthos_sim` on 127.0.0.1 with that plan and
added latency, writes a project folder (`.dlt/config.toml`, `.dlt/secrets.toml`, a DuckDB file
named in it), and runs `growthos-sync backfill --start-date DAY --resources events` from
that folder as its own process (`--start-date`: the day of the server's earliest event, as a user
who knows when their account started would pass; `--start-date` sets another). It prints one
table:

- `% ceiling`: rows / (process start -> process exit, when the rows are in DuckDB) against the
  plan's ceiling (req/s x 100 rows); the rows are counted with COUNT(*) and checked against the
  server's event count;
- `429s` and their share of the requests (from the server's /_sim/stats);
- `requests` against the minimum, ceil(events / 100) (every page full, nothing probed);
- `before 1st` / `after last`: seconds from process start to the first API request the server
  counted and from the last one to process exit (sampled every 0.1 s): the fixed cost.

The sizes default to 50 s of requests at each plan's ceiling (runs of 50-65 s, the upper end
of the 20-60 s a cell is meant to take: the fixed cost of a process weighs half what it does
at 25 s). `--profile` also prints each run's requests per second, as the server counted them.
`--peer-cell` also runs dlt's generic rest_api source (configured as in benchmarks/common.py) as its own process on that cell,
on `--peer-events` events (it is far slower), and adds its row to the table. `--baseline DIR`
runs the same command again on each cell with the connector imported from DIR (another
checkout), right after ours on the same server (reset to the same data): before and after
side by side on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from common import KEY, PAGE, PLAN_RPS, ROOT, Server, machine, table

BIN = Path(sys.executable).parent / "growthos-sync"
PLANS = ("free", "growth", "scale")
LATENCIES = (0, 50, 200, 300)
# 50 s of requests at each plan's ceiling.
EVENTS = {"free": 50_000, "growth": 250_000, "scale": 500_000}
CONTACTS = 5_000
DB = "bench.duckdb"


@dataclass
class Cell:
    contender: str
    plan: str
    latency_ms: int
    events: int
    seconds: float = 0.0
    rows: int = 0
    requests: int = 0
    throttled: int = 0
    profile: list[int] = field(default_factory=list)  # requests counted in each second
    first_at: float | None = None  # seconds from process start to the first API request
    last_at: float | None = None   # ... to the last one
    exit_code: int = 0
    tail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ceiling(self) -> int:
        return PLAN_RPS[self.plan] * PAGE  # type: ignore[operator]

    @property
    def pct(self) -> float:
        return 100.0 * self.rows / self.seconds / self.ceiling if self.seconds else 0.0

    @property
    def minimum(self) -> int:
        return max(1, math.ceil(self.events / PAGE))


class Watch:
    """Samples /_sim/stats every 0.1 s: when the first and the last API request were counted."""

    def __init__(self, server: Server) -> None:
        self.url = server.url
        self.base = server.stats()
        self.first: float | None = None
        self.last: float | None = None
        self._seen = self.base.get("requests", 0)
        self.samples: list[tuple[float, int]] = []  # (seconds from start, requests so far)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.perf_counter()

    def start(self, t0: float) -> None:
        self.t0 = t0
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while not self._done.wait(0.1):
                asked = time.perf_counter()
                try:
                    n = c.get("/_sim/stats").json().get("requests", 0)
                except httpx.HTTPError:
                    continue
                at = (asked + time.perf_counter()) / 2 - self.t0
                self.samples.append((at, n - self.base.get("requests", 0)))
                if n != self._seen:
                    if self.first is None:
                        self.first = at - 0.05  # somewhere in the last 0.1 s
                    self.last = at - 0.05
                    self._seen = n

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def project(tmp: Path, base_url: str) -> dict[str, str]:
    """A project folder as a user has it: ./.dlt with the server's URL, the key, the DuckDB
    file; dlt's data folder (pipeline state) inside the temp dir too. Returns the environment."""
    cfg = tmp / ".dlt"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text(
        "[runtime]\ndlthub_telemetry = false\n\n[sources.growthos]\n"
        f"base_url = {json.dumps(base_url)}\n\n[destination.duckdb]\n"
        f'credentials = "{DB}"\n')
    (cfg / "secrets.toml").write_text(f'[sources.growthos]\napi_key = "{KEY}"\n')
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOURCES__", "DESTINATION__", "RUNTIME__", "DLT_"))}
    env["DLT_DATA_DIR"] = str(tmp / "dlt")
    return env


def count_events(db: Path, dataset: str = "growthos") -> int:
    import duckdb

    if not db.exists():
        return 0
    with duckdb.connect(str(db), read_only=True) as con:
        try:
            row = con.execute(f'SELECT COUNT(*) FROM "{dataset}"."events"').fetchone()
        except duckdb.Error:
            return 0
    return int(row[0]) if row else 0


def run_process(server: Server, cell: Cell, cmd: list[str], cwd: Path,
                env: dict[str, str]) -> Cell:
    """Run `cmd` as its own process; time it from start to exit and watch the server."""
    watch = Watch(server)
    t0 = time.perf_counter()
    watch.start(t0)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False,
                          timeout=1800)
    cell.seconds = time.perf_counter() - t0
    watch.stop()
    after = server.stats()
    cell.requests = after.get("requests", 0) - watch.base.get("requests", 0)
    cell.throttled = after.get("rate_limited", 0) - watch.base.get("rate_limited", 0)
    cell.first_at, cell.last_at = watch.first, watch.last
    cell.profile = per_second(watch.samples)
    cell.exit_code = proc.returncode
    cell.tail = (proc.stdout[-1500:] + proc.stderr[-1500:]).strip()
    return cell


def per_second(samples: list[tuple[float, int]]) -> list[int]:
    """Requests counted in each whole second from the process start (from 0.1 s samples)."""
    out: list[int] = []
    last = 0
    for second in range(int(samples[-1][0]) + 1 if samples else 0):
        n = max((c for t, c in samples if t <= second + 1), default=last)
        out.append(n - last)
        last = n
    return out


def first_day(server: Server) -> str:
    """The day (UTC) of the server's earliest event."""
    return min((r["timestamp"] for r in server.truth("events")), default="2000-01-01")[:10]


def run_ours(server: Server, cell: Cell, start: str, windows: int | None,
             code: str | None = None) -> Cell:
    """The command in a fresh project folder; `code`: import the connector from that folder
    (another checkout, on PYTHONPATH) instead of this one."""
    tmp = Path(tempfile.mkdtemp(prefix="gos_matrix_"))
    try:
        env = project(tmp, server.base_url)
        if code:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (code, env.get("PYTHONPATH")) if p)
        # Another checkout's connector may predate the console script's entry point: run its
        # `main` as that checkout's own script did.
        script = "import sys; from growthos_source.cli import main; sys.exit(main())"
        head = [sys.executable, "-c", script] if code else [str(BIN)]
        cmd = [*head, "backfill", "--start-date", start, "--resources", "events"]
        if windows is not None:
            cmd += ["--backfill-windows", str(windows)]
        run_process(server, cell, cmd, tmp, env)
        cell.rows = count_events(tmp / DB)
        return cell
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


PEER_SCRIPT = """
import sys
sys.path.insert(0, {bench!r})
import dlt
from common import peer_events
p = dlt.pipeline(pipeline_name="peer", destination=dlt.destinations.duckdb({db!r}),
                 dataset_name="growthos")
p.run(peer_events({url!r}))
"""


def run_peer(server: Server, cell: Cell) -> Cell:
    """dlt's rest_api source as its own process (`python -c ...`, dlt's defaults)."""
    tmp = Path(tempfile.mkdtemp(prefix="gos_matrix_peer_"))
    try:
        env = project(tmp, server.base_url)
        env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
        script = PEER_SCRIPT.format(bench=str(ROOT / "benchmarks"), db=str(tmp / DB),
                                    url=server.base_url)
        run_process(server, cell, [sys.executable, "-c", script], tmp, env)
        cell.rows = count_events(tmp / DB)
        return cell
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def parse_list(text: str, known: tuple[Any, ...], kind: type) -> list[Any]:
    values = [kind(x.strip()) for x in text.split(",") if x.strip()]
    unknown = [v for v in values if kind is str and v not in known]
    if unknown:
        raise SystemExit(f"error: unknown plans {unknown}; known: {', '.join(known)}")
    return values


def parse_events(text: str | None) -> dict[str, int]:
    out = dict(EVENTS)
    for part in (text or "").split(","):
        if part.strip():
            plan, _, n = part.partition("=")
            if plan.strip() not in EVENTS or not n.strip().isdigit():
                raise SystemExit(f"error: --events {text!r}: use e.g. free=30000,scale=300000")
            out[plan.strip()] = int(n)
    return out


def row(c: Cell) -> list[Any]:
    ok = "yes" if c.rows == c.events else f"NO ({c.rows:,})"
    before = None if c.first_at is None else max(0.0, c.first_at)
    after = None if c.last_at is None else max(0.0, c.seconds - c.last_at)
    return [c.contender, c.plan, c.latency_ms, c.events, ok, c.seconds, f"{c.pct:.1f}%",
            f"{c.throttled} ({100 * c.throttled / max(1, c.requests):.2f}%)",
            c.requests, c.minimum, f"{100 * (c.requests / c.minimum - 1):+.1f}%",
            before, after]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plans", default=",".join(PLANS), help="comma-separated (default: all)")
    p.add_argument("--latencies", default=",".join(map(str, LATENCIES)),
                   help="comma-separated ms (default 0,50,200,300)")
    p.add_argument("--events", help="events per plan, e.g. free=30000,growth=150000 "
                   "(default 50 s at each plan's ceiling)")
    p.add_argument("--backfill-windows", type=int, metavar="N",
                   help="pass --backfill-windows N to the command (default: its own default)")
    p.add_argument("--peer-cell", default="scale:50", metavar="PLAN:MS",
                   help="run dlt's rest_api source on this cell too (default scale:50)")
    p.add_argument("--peer-events", type=int, default=20_000,
                   help="events for the peer's run (default 20000)")
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--start-date", help="the command's --start-date (default: the day of the "
                   "server's earliest event)")
    p.add_argument("--baseline", metavar="DIR", help="also run the command with the connector "
                   "imported from DIR (e.g. `git archive main | tar -x -C DIR`), right after "
                   "ours on the same server: before/after side by side")
    p.add_argument("--profile", action="store_true",
                   help="also print each run's requests per second")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    plans = parse_list(args.plans, PLANS, str)
    latencies = parse_list(args.latencies, LATENCIES, int)
    sizes = parse_events(args.events)
    peer_plan, _, peer_ms = args.peer_cell.partition(":")
    print(f"machine: {machine()}", flush=True)
    print(f"command: {BIN.name} backfill --start-date {args.start_date or 'DAY'} "
          "--resources events"
          + (f" --backfill-windows {args.backfill_windows}" if args.backfill_windows is not None
             else ""), flush=True)

    cells: list[Cell] = []
    start, days = args.start_date, dict[tuple[int, str | None], str]()
    for plan in plans:
        for ms in latencies:
            n = sizes[plan]
            with Server(plan=plan, latency_ms=ms, contacts=CONTACTS, events=n,
                        seed=args.seed) as srv:
                expected = int(srv.info()["events"])
                if (n, start) not in days:
                    days[(n, start)] = start or first_day(srv)
                day = days[(n, start)]
                print(f"running: ours, {plan}, {ms} ms, {expected:,} events from {day} ...",
                      flush=True)
                c = run_ours(srv, Cell("ours", plan, ms, expected), day, args.backfill_windows)
                cells.append(c)
                print(f"  {c.seconds:.1f} s, {c.pct:.1f}% of the ceiling, {c.requests} "
                      f"requests, {c.throttled} 429s, exit {c.exit_code}", flush=True)
                if args.profile:
                    print("  req/s: " + " ".join(map(str, c.profile)), flush=True)
                if c.exit_code or c.rows != c.events:
                    print("  !! " + c.tail.replace("\n", "\n  !! "), flush=True)
                if args.baseline:
                    srv.reset()
                    print(f"running: baseline, {plan}, {ms} ms ...", flush=True)
                    b = run_ours(srv, Cell("baseline", plan, ms, expected), day,
                                 args.backfill_windows, code=args.baseline)
                    cells.append(b)
                    print(f"  {b.seconds:.1f} s, {b.pct:.1f}% of the ceiling, {b.requests} "
                          f"requests, {b.throttled} 429s, exit {b.exit_code}", flush=True)
                    if b.exit_code or b.rows != b.events:
                        print("  !! " + b.tail.replace("\n", "\n  !! "), flush=True)
                if not args.skip_peer and (plan, str(ms)) == (peer_plan, peer_ms):
                    srv.reset(events=args.peer_events)
                    pn = int(srv.info()["events"])
                    print(f"running: rest_api, {plan}, {ms} ms, {pn:,} events ...", flush=True)
                    pc = run_peer(srv, Cell("rest_api", plan, ms, pn))
                    cells.append(pc)
                    if pc.exit_code or pc.rows != pc.events:
                        print("  !! " + pc.tail.replace("\n", "\n  !! "), flush=True)

    table(["contender", "plan", "ms", "events", "= server", "wall s", "% ceiling", "429s",
           "requests", "minimum", "vs min", "before 1st s", "after last s"],
          [row(c) for c in cells],
          title="Event backfill as a process (start -> rows in DuckDB), per plan and latency")
    print("targets: >= 90% of the ceiling in every cell, < 1% 429s, requests within 3% of the "
          "minimum")
    if args.baseline:
        pairs = [(c, b) for c in cells if c.contender == "ours" for b in cells
                 if b.contender == "baseline" and (b.plan, b.latency_ms) == (c.plan, c.latency_ms)]
        print(f"\nours / baseline ({args.baseline}) wall time per cell: " + ", ".join(
            f"{c.plan} {c.latency_ms} ms {c.seconds / b.seconds:.2f}x" for c, b in pairs))
    ours = [c for c in cells if c.contender == "ours"]
    return 0 if all(c.exit_code == 0 and c.rows == c.events for c in ours) else 1


if __name__ == "__main__":
    raise SystemExit(main())
