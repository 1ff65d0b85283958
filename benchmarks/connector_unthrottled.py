"""Unthrottled events backfill: ours, dlt's rest_api peer, and the raw limit of the API.

    python benchmarks/connector_unthrottled.py [--events 200000] [--contacts 20000]
        [--windows 8] [--repeat 3] [--peer-events N] [--skip-peer]

The server runs with `--plan unlimited --latency-ms 0` in its own process on 127.0.0.1.
Contenders (the server is reset before each, so each reads the same data):
- ours      sync(pipeline, growthos(...).with_resources("events")) into a fresh DuckDB file
- rest_api  dlt's generic rest_api source as its docs suggest, dlt's defaults (insert_values)
- raw x1    httpx walking GET /analytics/events?limit=100 along one cursor chain, parsing each
            page's JSON (response.json(), as our client does) and nothing else
- raw xN    the same over N concurrent from/to windows holding equal numbers of events (what
            the server can give when the client is not the bottleneck)
raw x1, raw xN and ours run in turn `--repeat` times (the peer once: it takes minutes), so a
slow second of a shared machine falls on one run, not on one contender. Each contender's row
is its median run, with every run's seconds beside it; the ratios are of the medians.
Prints rows/s, requests and the ratios ours/peer and ours/raw.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import threading
from typing import Any

import httpx
from common import (
    KEY,
    PAGE,
    Measured,
    Server,
    counted,
    machine,
    ours_events,
    peer_events,
    run_events_backfill,
    run_ours,
    run_peer,
    steps_text,
    table,
)

ISO = "%Y-%m-%dT%H:%M:%S.%f"


def _iso(t: dt.datetime) -> str:
    return t.strftime(ISO)[:-3] + "Z"


def _ts(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def raw_walk(base_url: str, params: dict[str, Any]) -> int:
    """Follow one cursor chain to its end; return the rows seen."""
    rows = 0
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {KEY}"},
                      timeout=60) as c:
        q = {**params, "limit": PAGE}
        while True:
            r = c.get("/analytics/events", params=q)
            r.raise_for_status()
            page = r.json()
            rows += len(page["data"])
            if not page["has_more"]:
                return rows
            q["cursor"] = page["next_cursor"]


def balanced_windows(base_url: str, n: int) -> list[dict[str, str]]:
    """n from/to windows over the whole stream holding about the same number of events, from
    the daily event counts (POST /analytics/query)."""
    h = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base_url, headers=h, timeout=60) as c:
        newest = _ts(c.get("/analytics/events", params={"limit": 1}).json()["data"][0]
                     ["timestamp"])
        per_day: dict[str, int] = {}
        end = newest.date()
        while True:  # 365-day chunks back until one holds no events
            start = end - dt.timedelta(days=364)
            body = c.post("/analytics/query", json={
                "type": "event_count", "interval": "day", "from": start.isoformat(),
                "to": end.isoformat()}).json()
            got = {d["date"]: sum(d["groups"].values()) for d in body["data"]}
            if not any(got.values()):
                break
            per_day.update(got)
            end = start - dt.timedelta(days=1)
    days = sorted(d for d, v in per_day.items() if v)
    total = sum(per_day[d] for d in days)
    cuts: list[dt.datetime] = []
    acc = 0
    for d in days:
        acc += per_day[d]
        if len(cuts) < n - 1 and acc >= total * (len(cuts) + 1) / n:
            cuts.append(dt.datetime.fromisoformat(d).replace(tzinfo=dt.timezone.utc)
                        + dt.timedelta(days=1))
    edges: list[dt.datetime | None] = [None, *cuts, None]
    out = []
    for a, b in itertools.pairwise(edges):
        w = {}
        if a is not None:
            w["from"] = _iso(a)
        if b is not None:
            w["to"] = _iso(b)
        out.append(w)
    return out


def raw_parallel(base_url: str, windows: list[dict[str, str]]) -> int:
    counts = [0] * len(windows)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            counts[i] = raw_walk(base_url, windows[i])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(windows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts)


def run_raw(srv: Server, name: str, fn: Any) -> Measured:
    expected = int(srv.reset()["events"])
    m, rows = counted(srv, name, fn)
    m.rows, m.extra["expected"] = rows, expected
    return m


def _median(runs: list[Measured]) -> Measured:
    """The run of median wall time (the lower middle one of an even number)."""
    ordered = sorted(runs, key=lambda m: m.seconds)
    return ordered[(len(ordered) - 1) // 2]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--contacts", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--windows", type=int, default=8, help="concurrent windows of raw xN")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs of raw x1, raw xN and ours, in turn (default 3)")
    p.add_argument("--peer-events", type=int, help="run the peer on N events (default: --events)")
    p.add_argument("--skip-peer", action="store_true")
    args = p.parse_args()
    print(f"machine: {machine()}; plan unlimited, latency 0 ms", flush=True)

    runs: dict[str, list[Measured]] = {"raw1": [], "rawN": [], "ours": []}
    with Server(plan="unlimited", latency_ms=0, contacts=args.contacts, events=args.events,
                seed=args.seed) as srv:
        wins = balanced_windows(srv.base_url, args.windows)
        for i in range(max(1, args.repeat)):
            print(f"round {i + 1} of {args.repeat}: raw x1, raw x{len(wins)}, ours ...",
                  flush=True)
            runs["raw1"].append(run_raw(srv, "raw x1 (httpx)",
                                        lambda: raw_walk(srv.base_url, {})))
            runs["rawN"].append(run_raw(srv, f"raw x{len(wins)} (httpx, from/to windows)",
                                        lambda: raw_parallel(srv.base_url, wins)))
            runs["ours"].append(run_events_backfill(srv, "ours",
                                                    lambda: ours_events(srv.base_url),
                                                    run_ours))
        res = {k: _median(v) for k, v in runs.items()}
        if not args.skip_peer:
            n = args.peer_events or args.events
            label = "rest_api" + (f" ({n:,} events)" if n != args.events else "")
            print(f"running: {label} ...", flush=True)
            res["peer"] = run_events_backfill(srv, label, lambda: peer_events(srv.base_url),
                                              run_peer, reset={"events": n}, memory_limit=None)
            runs["peer"] = [res["peer"]]

    rows = []
    for key, m in res.items():
        ok = ("yes" if all(r.rows == r.extra["expected"] for r in runs[key])
              else f"NO ({m.extra['expected']:,})")
        rows.append([m.name, m.seconds, " ".join(f"{r.seconds:.1f}" for r in runs[key]),
                     m.rows, ok, m.rows_per_s, m.requests, m.requests / m.seconds,
                     steps_text(m.steps) if m.steps else "-"])
    table(["contender", "wall s", "runs s", "rows", "= server", "rows/s", "requests", "req/s",
           "extract/normalize/load s"], rows,
          title=f"Unthrottled events backfill: {args.events:,} events, plan unlimited, "
                f"latency 0 ms; median of {len(runs['ours'])} runs each")
    ours = res["ours"].rows_per_s
    ratios = []
    if "peer" in res:
        ratios.append(["ours / rest_api", ours / res["peer"].rows_per_s, ">= 5x"])
    ratios.append(["ours / raw x1", ours / res["raw1"].rows_per_s, ">= 0.5x"])
    ratios.append([f"ours / raw x{len(wins)}", ours / res["rawN"].rows_per_s, "-"])
    table(["ratio (rows/s)", "x", "target"],
          [[a, f"{b:.2f}x", c] for a, b, c in ratios])
    if args.peer_events and args.peer_events != args.events and "peer" in res:
        print(f"note: the rest_api peer ran on {args.peer_events:,} events (server reset with "
              f"events={args.peer_events}), not {args.events:,}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
