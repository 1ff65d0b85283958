"""Peak RSS of our events backfill at two sizes (default 100,000 and 1,000,000 events).

    python benchmarks/connector_memory.py [--sizes 100000,1000000] [--plan scale]
        [--latency-ms 50] [--contacts 20000]

Starts `python -m growthos_sim` on 127.0.0.1 in its own process. For each size it resets the
server to that many events and runs `sync(pipeline, growthos(...).with_resources("events"))` in
a child process (fresh pipelines_dir and DuckDB file), which reports its VmRSS after imports and
its VmHWM (peak RSS) at the end, read from /proc/self/status. Prints both sizes and the ratio.
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


def child(base_url: str) -> None:
    import dlt  # noqa: F401  (imports count in the baseline)
    import duckdb  # noqa: F401
    import pyarrow  # noqa: F401
    from common import Workdir, count_rows, fresh_pipeline, ours_events, run_ours, step_seconds

    baseline = _status_kb("VmRSS")
    work = Workdir()
    try:
        pipeline = fresh_pipeline("memory", work)
        t0 = time.perf_counter()
        run_ours(pipeline, ours_events(base_url))
        secs = time.perf_counter() - t0
        peak = _status_kb("VmHWM")
        rows = count_rows(work, pipeline.dataset_name, "events")
        print(json.dumps({"baseline_kb": baseline, "peak_kb": peak, "rows": rows,
                          "seconds": secs, "steps": step_seconds(pipeline)}))
    finally:
        work.cleanup()


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return 0
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--contacts", type=int, default=20_000)
    p.add_argument("--plan", default="scale")
    p.add_argument("--latency-ms", type=int, default=50)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"machine: {machine()}; plan {args.plan}, latency {args.latency_ms} ms", flush=True)

    results = []
    with Server(plan=args.plan, latency_ms=args.latency_ms, contacts=args.contacts,
                events=sizes[0], seed=args.seed) as srv:
        for n in sizes:
            expected = srv.reset(events=n)["events"]
            print(f"running: ours, {n:,} events, in a child process ...", flush=True)
            out = subprocess.run([sys.executable, __file__, "--child", srv.base_url], cwd=ROOT,
                                 capture_output=True, text=True, check=False)
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"the child for {n} events failed")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r.update(events=n, expected=expected)
            results.append(r)

    first = results[0]["peak_kb"]
    rows = [[f"{r['events']:,}", r["seconds"], r["rows"],
             "yes" if r["rows"] == r["expected"] else "NO",
             r["baseline_kb"] / 1024, r["peak_kb"] / 1024, (r["peak_kb"] - r["baseline_kb"]) / 1024,
             f"{r['peak_kb'] / first:.2f}x"] for r in results]
    table(["events", "wall s", "rows", "= server", "RSS after imports MB", "peak RSS MB",
           "peak - imports MB", f"peak / {results[0]['events']:,}"], rows,
          title="Peak RSS (VmHWM) of our events backfill, child process")
    print("targets: < 500 MB at 1,000,000 events; within 25% (<= 1.25x) of the 100,000 figure")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
