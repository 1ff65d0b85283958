"""Peak RSS of our events backfill at two sizes (default 100,000 and 1,000,000 events).

    python benchmarks/connector_memory.py [--sizes 100000,1000000] [--plan scale]
        [--latency-ms 50] [--contacts 20000] [--backfill-windows N] [--memory-limits 256MB,none]

Starts `python -m growthos_sim` on 127.0.0.1 in its own process. For each size it resets the
server to that many events and runs `sync(pipeline, growthos(...).with_resources("events"))` in
a child process (fresh pipelines_dir and DuckDB file), which reports its VmRSS after imports and
its VmHWM (peak RSS) at the end, read from /proc/self/status. Prints both sizes and the ratio,
and the highest RSS the parent sampled during each dlt step (extract / normalize / load).
`--memory-limits` lists DuckDB buffer-pool caps to measure ("default" is the one our pipeline
ships, growthos_source.warehouse.DEFAULT_MEMORY_LIMIT; "none" is DuckDB's own 80% of RAM).
Targets: < 500 MB at 1,000,000 events, and within 25% of the 100,000-event figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from common import ROOT, Server, machine, table


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def child(base_url: str, windows: int, memory_limit: str) -> None:
    import dlt  # noqa: F401  (imports count in the baseline)
    import duckdb  # noqa: F401
    import pyarrow  # noqa: F401
    from common import (
        Workdir,
        count_rows,
        fresh_pipeline,
        ours_events,
        ours_events_factory,
        run_ours,
        run_ours_chunked,
        step_seconds,
        step_spans,
    )

    baseline = _status_kb("VmRSS")
    work = Workdir()
    try:
        pipeline = fresh_pipeline("memory", work,
                                  memory_limit=None if memory_limit == "none" else memory_limit)
        t0 = time.perf_counter()
        if windows:
            run_ours_chunked(windows)(pipeline, ours_events_factory(base_url))
        else:
            run_ours(pipeline, ours_events(base_url))
        secs = time.perf_counter() - t0
        peak = _status_kb("VmHWM")
        rows = count_rows(work, pipeline.dataset_name, "events")
        spans = step_spans(pipeline)  # every dlt run of the sync, the ledger's too
        print(json.dumps({"baseline_kb": baseline, "peak_kb": peak, "rows": rows,
                          "seconds": secs, "steps": step_seconds(pipeline), "spans": spans}))
    finally:
        work.cleanup()


def sample_rss(proc: subprocess.Popen[str]) -> list[tuple[float, float]]:
    """(unix time, VmRSS MB) of a running child every 0.2 s until it exits."""
    out: list[tuple[float, float]] = []
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                kb = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
            out.append((time.time(), kb / 1024))
        except (OSError, StopIteration):
            pass
        time.sleep(0.2)
    return out


def phase_peaks(samples: list[tuple[float, float]],
                spans: list[tuple[str, float, float]]) -> dict[str, float]:
    peaks: dict[str, float] = {}
    for step, a, b in spans:
        inside = [mb for t, mb in samples if a <= t <= b]
        if inside:
            peaks[step] = max(peaks.get(step, 0.0), *inside)
    return peaks


def _limit_label(limit: str) -> str:
    from growthos_source.warehouse import DEFAULT_MEMORY_LIMIT

    if limit == "none":
        return "uncapped"
    return f"cap {DEFAULT_MEMORY_LIMIT if limit == 'default' else limit}"


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return 0
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--contacts", type=int, default=20_000)
    p.add_argument("--plan", default="scale")
    p.add_argument("--latency-ms", type=int, default=50)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--backfill-windows", type=int, default=0, metavar="N",
                   help="also measure sync(..., backfill_windows=N): chunks of N windows")
    p.add_argument("--memory-limits", default="default",
                   help="comma-separated DuckDB memory caps to measure, e.g. default,none,128MB")
    args = p.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    limits = [x.strip() for x in args.memory_limits.split(",") if x.strip()]
    modes = [(w, lim) for lim in limits
             for w in [0] + ([args.backfill_windows] if args.backfill_windows else [])]
    print(f"machine: {machine()}; plan {args.plan}, latency {args.latency_ms} ms", flush=True)

    results = []
    with Server(plan=args.plan, latency_ms=args.latency_ms, contacts=args.contacts,
                events=sizes[0], seed=args.seed) as srv:
        for (windows, limit), n in ((m, n) for m in modes for n in sizes):
            expected = srv.reset(events=n)["events"]
            mode = (f"chunks of {windows} windows" if windows else "one run") + \
                f", DuckDB {_limit_label(limit)}"
            print(f"running: ours ({mode}), {n:,} events, in a child process ...", flush=True)
            proc = subprocess.Popen([sys.executable, __file__, "--child", srv.base_url,
                                     str(windows), limit],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            samples = sample_rss(proc)
            stdout, stderr = proc.communicate()
            if proc.returncode != 0:
                print(stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"the child for {n} events failed")
            r = json.loads(stdout.strip().splitlines()[-1])
            r.update(events=n, expected=expected, mode=mode,
                     phases=phase_peaks(samples, r["spans"]))
            results.append(r)

    first = {r["mode"]: r["peak_kb"] for r in reversed(results)}
    rows = [[r["mode"], f"{r['events']:,}", r["seconds"], r["rows"],
             "yes" if r["rows"] == r["expected"] else "NO",
             r["baseline_kb"] / 1024, r["peak_kb"] / 1024, (r["peak_kb"] - r["baseline_kb"]) / 1024,
             f"{r['peak_kb'] / first[r['mode']]:.2f}x"] for r in results]
    table(["ours", "events", "wall s", "rows", "= server", "RSS after imports MB",
           "peak RSS MB", "peak - imports MB", f"peak / {sizes[0]:,}"], rows,
          title="Peak RSS (VmHWM) of our events backfill, child process")
    phases = ["extract", "normalize", "load"]
    table(["ours", "events", *(f"{ph} MB" for ph in phases)],
          [[r["mode"], f"{r['events']:,}", *(r["phases"].get(ph) for ph in phases)]
           for r in results],
          title="Highest RSS sampled (every 0.2 s from the parent) during each dlt step"
                " (of every dlt run of the sync)")
    print("targets: < 500 MB at 1,000,000 events; within 25% (<= 1.25x) of the 100,000 figure")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
