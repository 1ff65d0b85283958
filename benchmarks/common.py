"""Shared helpers of the connector benchmarks (benchmarks/connector_*.py).

- `Server`: `python -m growthos_sim` as a separate process on 127.0.0.1 (never anything else),
  with the control plane: reset, stats, info, mutate, truth.
- `fresh_pipeline`: a dlt pipeline in a fresh temp dir (its own pipelines_dir and DuckDB file).
- `run_contender`: reset the server, count requests and 429s from /_sim/stats around a run,
  time it, count the rows DuckDB holds, and read dlt's extract/normalize/load seconds.
- `table`: print a plain text table.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# Offline, quiet dlt; set before dlt is imported anywhere.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")

import httpx
import orjson

KEY = "gos_sk_test_local"  # the server's default key (all scopes)
PAGE = 100
PLAN_RPS = {"free": 10, "growth": 50, "scale": 100, "unlimited": None}
HOST = "127.0.0.1"


# ---- the server process ----------------------------------------------------------------------
class Server:
    """`python -m growthos_sim --host 127.0.0.1 --port 0 ...` in its own process."""

    def __init__(self, *, plan: str, latency_ms: int, contacts: int, events: int,
                 seed: int = 7, timeout: float = 600) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        cmd = [sys.executable, "-m", "growthos_sim", "--host", HOST, "--port", "0",
               "--plan", plan, "--latency-ms", str(latency_ms), "--contacts", str(contacts),
               "--events", str(events), "--seed", str(seed)]
        self.plan, self.latency_ms = plan, latency_ms
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        try:
            self.url = self._wait_for_url(timeout)
        except BaseException:
            self.stop()
            raise
        assert self.url.startswith(f"http://{HOST}:"), self.url
        self.base_url = self.url + "/v1"
        # Keep draining the server's output so it never blocks on a full pipe.
        assert self.proc.stdout is not None
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        self.http = httpx.Client(base_url=self.url, timeout=600)

    def _wait_for_url(self, timeout: float) -> str:
        out = self.proc.stdout
        assert out is not None
        deadline, seen = time.monotonic() + timeout, list[str]()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the server exited:\n" + "".join(seen) + out.read())
            if not select.select([out], [], [], 0.5)[0]:
                continue
            line = out.readline()
            seen.append(line)
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            if m:
                print("server: " + line.strip(), flush=True)
                return m.group(1)
        raise RuntimeError(f"the server did not print its URL within {timeout:.0f}s")

    def stop(self) -> None:
        if getattr(self, "http", None) is not None:
            self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- control plane ----
    def _call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, "/_sim/" + path, **kw)
        r.raise_for_status()
        return r.json()

    def reset(self, **kw: Any) -> dict[str, Any]:
        """Rebuild the same data from the seed (sizes may be changed); clears the counters."""
        return self._call("POST", "reset", json=kw)  # type: ignore[no-any-return]

    def stats(self) -> dict[str, int]:
        return self._call("GET", "stats")  # type: ignore[no-any-return]

    def info(self) -> dict[str, Any]:
        return self._call("GET", "info")  # type: ignore[no-any-return]

    def mutate(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "mutate", json=spec)  # type: ignore[no-any-return]

    def truth(self, table: str) -> Iterator[dict[str, Any]]:
        r = self.http.get("/_sim/truth/" + table)
        r.raise_for_status()
        for line in r.content.splitlines():
            if line.strip():
                yield orjson.loads(line)

    def server_cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- pipelines -----------------------------------------------------------------------------
@dataclass
class Workdir:
    """A fresh temp dir holding one pipeline's pipelines_dir and DuckDB file."""

    path: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gos_bench_")))

    @property
    def db(self) -> Path:
        return self.path / "bench.duckdb"

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def fresh_pipeline(name: str, work: Workdir, dataset: str = "growthos",
                   memory_limit: str | None = "default") -> Any:
    """A pipeline into a fresh DuckDB file. `memory_limit` caps DuckDB's buffer pool the way
    our pipeline script does ("default": growthos_source.warehouse's cap); None leaves DuckDB's
    own default (80% of RAM), as a plain dlt pipeline has it."""
    import dlt

    from growthos_source.warehouse import DEFAULT_MEMORY_LIMIT, duckdb_destination

    if memory_limit == "default":
        memory_limit = DEFAULT_MEMORY_LIMIT
    record_run_steps()

    return dlt.pipeline(pipeline_name=name, pipelines_dir=str(work.path / "pipelines"),
                        destination=duckdb_destination(str(work.db), memory_limit=memory_limit),
                        dataset_name=dataset)


def count_rows(work: Workdir, dataset: str, table: str) -> int:
    import duckdb

    with duckdb.connect(str(work.db), read_only=True) as con:
        row = con.execute(f'SELECT COUNT(*) FROM "{dataset}"."{table}"').fetchone()
    return int(row[0]) if row else 0


# The steps of every dlt run not yet read by step_seconds(), per pipeline (working dir), as
# (step, started, finished) in epoch seconds: a sync is several runs (the data, the chunks of a
# chunked backfill, the run ledger's own small one), and dlt keeps only the last one's trace.
Span = tuple[str, float, float]
_RUN_SPANS: dict[str, list[Span]] = {}


def _trace_spans(pipeline: Any) -> list[Span]:
    """The steps (extract / normalize / load) of the pipeline's last run."""
    return [(st.step, st.started_at.timestamp(), st.finished_at.timestamp())
            for st in getattr(pipeline.last_trace, "steps", []) or []
            if st.started_at and st.finished_at]


def _seconds(spans: list[Span]) -> dict[str, float]:
    out: dict[str, float] = {}
    for step, a, b in spans:
        out[step] = out.get(step, 0.0) + b - a
    return out


def record_run_steps() -> None:
    """Have every `Pipeline.run` record its steps for step_spans() / step_seconds()
    (idempotent)."""
    from dlt.pipeline.pipeline import Pipeline

    run = Pipeline.run
    if getattr(run, "records_steps", False):
        return

    def recorded(self: Any, *a: Any, **kw: Any) -> Any:
        try:
            return run(self, *a, **kw)
        finally:
            _RUN_SPANS.setdefault(self.working_dir, []).extend(_trace_spans(self))

    recorded.records_steps = True  # type: ignore[attr-defined]
    Pipeline.run = recorded  # type: ignore[method-assign]


def step_spans(pipeline: Any) -> list[Span]:
    """The steps of the pipeline's runs since step_seconds() was last called (all the runs of
    one sync); the last run's alone when record_run_steps() was not called before the runs."""
    return list(_RUN_SPANS.get(pipeline.working_dir) or _trace_spans(pipeline))


def step_seconds(pipeline: Any) -> dict[str, float]:
    """Seconds per dlt step, summed over step_spans(); the next call starts afresh."""
    spans = step_spans(pipeline)
    _RUN_SPANS.pop(pipeline.working_dir, None)
    return _seconds(spans)


@dataclass
class Measured:
    name: str
    seconds: float
    requests: int
    throttled: int
    rows: int | None = None
    steps: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return (self.rows or 0) / self.seconds if self.seconds else 0.0

    @property
    def pct_429(self) -> float:
        return 100.0 * self.throttled / self.requests if self.requests else 0.0


class StallWatch:
    """Notices when this process stops running Python for a while: a thread that should wake
    every 10 ms records wake-ups later than `threshold`, and gc callbacks time every collection
    of the oldest generation. (Threads paced by a schedule all wake at once after such a stall.)"""

    def __init__(self, threshold: float = 0.2) -> None:
        self.threshold = threshold
        self.stalls: list[tuple[float, float]] = []  # (seconds since start, length)
        self.gc2: list[tuple[float, float]] = []
        self._t0 = time.perf_counter()
        self._gc_start = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        last = time.perf_counter()
        while not self._done.wait(0.01):
            now = time.perf_counter()
            if now - last - 0.01 > self.threshold:
                self.stalls.append((last - self._t0, now - last))
            last = now

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc2.append((self._gc_start - self._t0, time.perf_counter() - self._gc_start))

    def __enter__(self) -> Self:
        import gc

        gc.callbacks.append(self._gc)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import gc

        self._done.set()
        self._thread.join()
        gc.callbacks.remove(self._gc)

    def summary(self) -> str:
        def fmt(xs: list[tuple[float, float]]) -> str:
            if not xs:
                return "none"
            top = sorted(xs, key=lambda x: -x[1])[:3]
            return (f"{len(xs)}, {sum(d for _, d in xs):.1f} s in all, longest " +
                    ", ".join(f"{d:.2f} s at {t:.0f} s" for t, d in top))
        return (f"stalls > {self.threshold:.1f} s of this process: {fmt(self.stalls)}; "
                f"gen-2 GC runs: {len(self.gc2)} (longest "
                f"{max((d for _, d in self.gc2), default=0.0):.2f} s)")


def counted(server: Server, name: str, fn: Callable[[], Any]) -> tuple[Measured, Any]:
    """Run fn; wall time and the server's request / 429 counts during it, plus a timeline of
    (seconds since start, requests, 429s) sampled from /_sim/stats about once a second
    (the control plane is not counted in the API's request counters)."""
    before = server.stats()
    timeline: list[tuple[float, int, int]] = []
    done = threading.Event()

    def sample() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while not done.wait(1.0):
                asked = time.perf_counter()
                try:
                    s = c.get("/_sim/stats").json()
                except httpx.HTTPError:
                    continue
                # the server took its snapshot somewhere between asking and the answer
                at = (asked + time.perf_counter()) / 2 - t0
                timeline.append((at, s.get("requests", 0), s.get("rate_limited", 0)))

    t0 = time.perf_counter()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with StallWatch() as watch:
            result = fn()
    finally:
        done.set()
        sampler.join()
    secs = time.perf_counter() - t0
    after = server.stats()

    def delta(k: str) -> int:
        return after.get(k, 0) - before.get(k, 0)

    m = Measured(name, secs, delta("requests"), delta("rate_limited"))
    m.extra["stalls"] = watch.summary()
    m.extra["timeline"] = [(t, r - before.get("requests", 0),
                            q - before.get("rate_limited", 0)) for t, r, q in timeline]
    return m, result


def rate_profile(m: Measured, bucket: float = 5.0) -> str:
    """Requests/s (and 429s, if any) per `bucket` seconds of a run, from its timeline."""
    pts = [(0.0, 0, 0), *m.extra.get("timeline", []), (m.seconds, m.requests, m.throttled)]
    out, edge, last = [], bucket, pts[0]
    for t, r, q in pts[1:]:
        if t < edge and (t, r, q) != pts[-1]:
            continue
        span = t - last[0]
        if span > 0:
            rate = (r - last[1]) / span
            out.append(f"{rate:.0f}" + (f"!{q - last[2]}" if q > last[2] else ""))
        last, edge = (t, r, q), t + bucket
    return " ".join(out)


def ours_events(base_url: str, **kw: Any) -> Any:
    from growthos_source import growthos

    return growthos(api_key=KEY, base_url=base_url, **kw).with_resources("events")


def peer_events(base_url: str) -> Any:
    """dlt's generic rest_api source, configured as its docs suggest for this API."""
    from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
    from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
    from dlt.sources.rest_api import rest_api_source

    return rest_api_source({
        "client": {
            "base_url": base_url,
            "auth": BearerTokenAuth(token=KEY),
            "paginator": JSONResponseCursorPaginator(
                cursor_path="next_cursor", cursor_param="cursor", has_more_path="has_more"),
        },
        "resources": [{
            "name": "events",
            "primary_key": "id",
            "endpoint": {
                "path": "analytics/events",
                "data_selector": "data",
                "params": {
                    "limit": PAGE,
                    "from": {"type": "incremental", "cursor_path": "timestamp",
                             "initial_value": "2000-01-01T00:00:00Z"},
                },
            },
        }],
    })


def run_events_backfill(server: Server, name: str, make_source: Callable[[], Any],
                        runner: Callable[[Any, Any], Any], reset: dict[str, Any] | None = None,
                        memory_limit: str | None = "default") -> Measured:
    """Reset the server, backfill the events into a fresh pipeline, verify the row count.
    Its step seconds are summed over the sync's dlt runs (step_seconds)."""
    info = server.reset(**(reset or {}))
    expected = int(info["events"])
    work = Workdir()
    try:
        pipeline = fresh_pipeline(name, work, memory_limit=memory_limit)
        m, _ = counted(server, name, lambda: runner(pipeline, make_source()))
        m.rows = count_rows(work, pipeline.dataset_name, "events")
        m.steps = step_seconds(pipeline)
        m.extra["expected"] = expected
        if m.rows != expected:
            print(f"!! {name}: DuckDB holds {m.rows} events, the server has {expected}",
                  flush=True)
        return m
    finally:
        work.cleanup()


def run_ours(pipeline: Any, source: Any) -> Any:
    from growthos_source import sync

    return sync(pipeline, source)


def ours_events_factory(base_url: str) -> Callable[..., Any]:
    """A source factory, as `sync(..., backfill_windows=N)` needs it."""
    return lambda **kw: ours_events(base_url, **kw)


def run_ours_chunked(windows: int) -> Callable[[Any, Any], Any]:
    """Our sync in its chunked backfill mode: each chunk of `windows` event windows is its own
    dlt run (extract, normalize, load, committed state)."""
    def run(pipeline: Any, factory: Any) -> Any:
        from growthos_source import sync

        return sync(pipeline, factory, backfill_windows=windows)
    return run


def run_peer(pipeline: Any, source: Any) -> Any:
    return pipeline.run(source)  # dlt's defaults: insert_values into DuckDB


# ---- output ----------------------------------------------------------------------------------
def table(headers: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    cells = [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    if title:
        print("\n" + title)
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                    for i, (h, w) in enumerate(zip(headers, widths))))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths))))
    sys.stdout.flush()


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def steps_text(steps: dict[str, float]) -> str:
    if not steps:
        return "-"
    return " / ".join(f"{steps.get(k, 0.0):.1f}" for k in ("extract", "normalize", "load"))


def machine() -> str:
    """Core count, Python and the connector's revision (the commit, and whether
    growthos_source/ had uncommitted edits when the benchmark ran)."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True,
                                  check=False, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    rev = git("rev-parse", "--short", "HEAD") or "?"
    if git("status", "--porcelain", "--", "growthos_source"):
        rev += " + uncommitted growthos_source edits"
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), load {load}, " \
           f"Python {sys.version.split()[0]}, connector at {rev}"


# ---- where a sync() spends its time ----------------------------------------------------------
class SyncMarks:
    """Wall-clock marks of one `sync()`: every request sent (httpx), every `pipeline.run`
    (with dlt's extract / normalize / load seconds) and the serial steps around them in
    growthos_source/sync.py (pending packages, replacements, deletes, re-attribution, ledger,
    the last checkpoint of a held DuckDB warehouse).

        with SyncMarks() as marks:
            sync(pipeline, source)
        print(marks.text())
    """

    STEPS = (("warehouse.recovery", "finish_pending"), ("replacements", "apply"),
             ("warehouse.deletes", "apply"), ("sync", "_reattribute"), ("ledger", "write"))

    def __init__(self) -> None:
        self.t0 = 0.0
        self.requests: list[float] = []
        self.spans: list[tuple[str, float, float, str]] = []  # (name, start, end, detail)
        self._undo: list[Callable[[], None]] = []

    def _now(self) -> float:
        return time.perf_counter() - self.t0

    def _wrap(self, owner: Any, attr: str, name: str,
              detail: Callable[[Any, tuple[Any, ...]], str] | None = None) -> None:
        fn = getattr(owner, attr)

        def timed(*a: Any, **kw: Any) -> Any:
            start = self._now()
            out: Any = None
            try:
                out = fn(*a, **kw)
                return out
            finally:
                self.spans.append((name, start, self._now(),
                                   detail(out, a) if detail is not None else ""))

        setattr(owner, attr, timed)
        self._undo.append(lambda: setattr(owner, attr, fn))

    def __enter__(self) -> Self:
        import importlib

        from dlt.pipeline.pipeline import Pipeline

        self.t0 = time.perf_counter()
        send = httpx.HTTPTransport.handle_request

        def counted_send(transport: Any, request: Any) -> Any:
            if not request.url.path.startswith("/_sim"):  # the benchmark's own calls
                self.requests.append(self._now())
            return send(transport, request)

        httpx.HTTPTransport.handle_request = counted_send  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(httpx.HTTPTransport, "handle_request", send))

        def run_detail(_: Any, a: tuple[Any, ...]) -> str:
            steps = _seconds(_trace_spans(a[0]))
            return "extract/normalize/load " + " / ".join(
                f"{steps.get(k, 0.0):.1f}" for k in ("extract", "normalize", "load"))

        self._wrap(Pipeline, "run", "pipeline.run", run_detail)
        for module, attr in self.STEPS:
            mod = importlib.import_module(f"growthos_source.{module}")
            self._wrap(mod, attr, f"{module.rsplit('.', 1)[-1]}.{attr}")
        # The DuckDB warehouse held for a sync: its last checkpoint (warehouse/checkpoints.py).
        held = importlib.import_module("growthos_source.warehouse.checkpoints").Deferral
        self._wrap(held, "close", "checkpoints.close")
        return self

    def __exit__(self, *exc: object) -> None:
        for undo in reversed(self._undo):
            undo()

    def text(self) -> str:
        """One line per step, in order, with the requests sent during it."""
        lines = []
        for name, a, b, detail in sorted(self.spans, key=lambda s: s[1]):
            inside = [t for t in self.requests if a <= t <= b]
            req = (f", {len(inside)} requests {inside[0]:.1f}-{inside[-1]:.1f}"
                   if inside else "")
            lines.append(f"  {a:6.1f} - {b:6.1f} s  {b - a:5.1f} s  {name}"
                         f"{' (' + detail + ')' if detail else ''}{req}")
        if self.requests:
            lines.append(f"  requests: {len(self.requests)}, first at {self.requests[0]:.1f} s, "
                         f"last at {self.requests[-1]:.1f} s")
        return "\n".join(lines)
