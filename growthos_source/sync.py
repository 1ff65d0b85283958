"""One call that does a whole sync the way a scheduler needs it: finish what a crashed run left
pending, extract and load with a fast file format, then apply deletes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Self

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.common.schema.typing import TTableFormat
from dlt.common.typing import TLoaderFileFormat
from dlt.extract.source import DltSource
from dlt.pipeline.exceptions import PipelineStepFailed

from . import isolation, ledger, reconcile, rejects, replacements, run_lock, runtime
from .prefetch import EventFeed
from .warehouse import checkpoints, deletes, duckdb, guard, recovery, refusals

logger = logging.getLogger("growthos_source")

# DuckDB's default `insert_values` loads ~20x slower than parquet (measured: see README).
DEFAULT_FILE_FORMAT: TLoaderFileFormat = "parquet"


@dataclass
class SyncResult:
    load_info: LoadInfo | None
    rows: dict[str, int] = field(default_factory=dict)  # rows extracted per table this run
    deletes_applied: dict[str, int] = field(default_factory=dict)
    recovered_pending: bool = False
    # what the event stream re-read beyond new events (rereads.py): days fixed, days still
    # different, events re-read for merged contacts, requests spent
    events: dict[str, Any] = field(default_factory=dict)


SourceFactory = Callable[..., DltSource]


class BackfillProgress(str):
    """Where a chunked event backfill is, after each chunk: the one-line text (a `str`, so
    callers that print or collect lines keep working) with the figures as attributes."""

    done: int  # windows loaded
    total: int
    rows: int
    rows_per_second: float
    eta_seconds: float

    def __new__(cls, done: int, total: int, rows: int, rate: float,
                eta: float) -> Self:
        self = super().__new__(cls, f"events backfill: {done}/{total} windows, {rows:,} rows, "
                                    f"{rate:,.0f} rows/s, ETA {eta:,.0f}s")
        self.done, self.total, self.rows = done, total, rows
        self.rows_per_second, self.eta_seconds = rate, eta
        return self


def sync(pipeline: dlt.Pipeline, source: DltSource | SourceFactory, *,
         backfill_windows: int | None = None,
         progress: Callable[[BackfillProgress], None] | None = None,
         loader_file_format: TLoaderFileFormat | None = None,
         table_format: TTableFormat | None = None,
         wait_for_lock: float = 0.0,
         command: str = "sync",
         **run_kwargs: Any) -> SyncResult:
    """Run one complete sync of `source` into `pipeline`.

    After a crash dlt's next `run()` only finishes the pending load packages and extracts
    nothing, so a scheduler would need two invocations; this loads the pending packages first,
    then syncs. Columns an aborted package left in the warehouse are put back into the local
    schema first (see `recovery.adopt_warehouse_columns`). Deletes noticed during the run are applied after its load (see deletes.py).

    With `backfill_windows=N` and a source *factory* (`lambda **kw: growthos(**kw)`), an event
    stream that is behind is first loaded in chunks of N windows (up to 2N when the feed has
    read the next ones already), each chunk its own load with its own committed state: an
    interrupted backfill resumes at the first unfinished chunk.
    `progress` receives a `BackfillProgress` per chunk (windows done/total, rows/s, ETA; its
    str() is one line, so `progress=print` works).

    Before anything is read or loaded: the run takes the pipeline's lock (another run in
    progress: `RunInProgressError` at once, or after waiting up to `wait_for_lock` seconds;
    see run_lock.py), and the destination must be the one this pipeline loaded into before and
    one that can merge (the filesystem destination needs `table_format="delta"`; see
    warehouse/guard.py). Both refusals are a one-line error; nothing is loaded.

    Every run that got past them, failed or not, leaves one row per table in `_growthos_runs`
    (ledger.py), its `command` column set to `command`.
    """
    if table_format is not None:
        run_kwargs["table_format"] = table_format
    guard.check_table_format(pipeline, run_kwargs.get("table_format"))
    with run_lock.hold(pipeline.working_dir, pipeline.pipeline_name, wait_for_lock):
        guard.check_one_destination(pipeline)
        try:
            # `held` closes after the ledger's rows are written (see _sync).
            with runtime.fewer_gc_passes(), runtime.arrow_on_the_c_allocator(), \
                    ExitStack() as held, ledger.Recorder(pipeline, command) as rec:
                return _sync(pipeline, source, backfill_windows, progress, loader_file_format,
                             run_kwargs, rec, held)
        finally:
            if not pipeline.first_run:  # something was loaded: this is its destination now
                guard.record(pipeline)


def _sync(pipeline: dlt.Pipeline, source: DltSource | SourceFactory,
          backfill_windows: int | None, progress: Callable[[BackfillProgress], None] | None,
          loader_file_format: TLoaderFileFormat | None, run_kwargs: dict[str, Any],
          rec: ledger.Recorder, held: ExitStack) -> SyncResult:
    # Arrow pages (the event stream) skip dlt's row normalizer, which otherwise adds the load id.
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    # Extract writes rows to gzipped files that normalize reads right back: on a nightly run
    # of mostly unchanged child lists the gzip alone took ~1.3 s of the main thread.
    if dlt.config.get("data_writer.disable_compression") is None:
        dlt.config["data_writer.disable_compression"] = True
    fmt = loader_file_format or DEFAULT_FILE_FORMAT
    # Records the warehouse refused and `growthos-sync reset --pending` set aside are rejects.
    rejects.use_set_aside(refusals.load_set_aside(pipeline))
    # Also removes rows that load jobs replayed after a crash inserted twice (see recovery.py).
    duckdb.fit_memory_limit(pipeline)  # a package left pending may hold a wide table
    recovered = recovery.finish_pending(pipeline)
    # A run killed between its load and the replacement of its re-read ranges: finish it
    # before this run counts the warehouse's events.
    replacements.apply(pipeline)
    run_source = source if isinstance(source, DltSource) else source()
    recovery.adopt_warehouse_columns(pipeline, run_source.schema.name)
    rec.tables(run_source)
    rows = rec.rows  # the ledger counts what the runs below committed
    # Events loaded by a first run are attributed as the API has them now: no second pass.
    had_events = "all" in _events_marks(pipeline)
    failures: list[isolation.Failure] = []
    if (not isinstance(source, DltSource) and backfill_windows
            and "events" in run_source.selected_resources):
        feed = EventFeed()  # reads the next chunk while dlt normalizes and loads this one
        if _events_backlog(pipeline) != 0:
            # A backfill to load (None: it starts now): no row-group merges while it appends
            # chunk after chunk (warehouse/duckdb.py). A caught-up sync keeps the vacuum, which
            # compacts what re-attribution replaced.
            held.enter_context(duckdb.vacuum_off(pipeline))
        failures += isolation.failing("events", lambda: _backfill_events(
            pipeline, source, backfill_windows, fmt, rows, progress,
            run_kwargs.get("table_format"), rec, feed))
        # Fresh after the backfill's runs; a feed that read chunks lends the caught-up run its
        # client, what it learnt of the stream and the lookback it read (event_stream.py).
        run_source = isolation.without(
            source(events_feed=feed) if feed.stream_probe is not None else source(), failures)
    else:
        feed = None

    def run_one(s: DltSource) -> LoadInfo:
        with replacements.session(pipeline):
            info = _run_within_memory(pipeline, lambda: pipeline.run(
                s, loader_file_format=fmt, **run_kwargs), rows)
        rec.loaded(info)
        return info

    # A run that may re-attribute holds a DuckDB warehouse open until the ledger is written:
    # DuckDB moves its log into the file while re-attribution reads the API, not at each
    # close in between (warehouse/checkpoints.py).
    checkpoint = (held.enter_context(checkpoints.deferred(pipeline)) if had_events
                  else checkpoints.Deferral())
    try:
        info, failed = isolation.run_each(run_source, run_one)
    finally:
        if feed is not None:
            feed.close()
    failures += failed
    applied = deletes.apply(pipeline) if info is not None else {}
    rec.deleted(applied)
    replacements.apply(pipeline)
    report = dict(_events_marks(pipeline).get("report") or {})
    if info is not None and had_events and "events" in run_source.selected_resources and (
            rows.get("contacts") or rows.get(deletes.LOG_TABLE)):
        checkpoint.start()
        again = source() if not isinstance(source, DltSource) else run_source
        failures += isolation.failing("events", lambda: _reattribute(
            pipeline, again, fmt, run_kwargs, rows, report, rec))
    result = SyncResult(info, rows, applied, recovered, report)
    if failures:
        raise isolation.TablesFailedError(failures, result)
    return result


def _run_within_memory(pipeline: dlt.Pipeline, run: Callable[[], LoadInfo],
                       rows: dict[str, int]) -> LoadInfo:
    """`run()`, adding its extracted rows to `rows`. When DuckDB ran out of its capped memory
    loading, the cap is raised (fitted to the widest table, else doubled: see
    warehouse/duckdb.py `relieve`) and the pending package loaded again, until it loads or the
    cap is at its ceiling; then the failure is explained as any refused load is."""
    duckdb.fit_memory_limit(pipeline)
    try:
        info = run()
    except PipelineStepFailed as exc:
        failed, counted = exc, False
        while True:
            before = duckdb.memory_limit(pipeline)
            limit = (duckdb.relieve(pipeline) if failed.step == "load"
                     and duckdb.is_out_of_memory(failed) else None)
            if limit is None:
                refused = refusals.explain(pipeline, failed)
                if refused is not None:
                    raise refused from failed
                raise failed
            if not counted:  # the run extracted and normalized; only its load is retried
                _count(pipeline, rows)
                counted = True
            logger.warning("DuckDB ran out of memory loading (limit %s); loading the pending "
                           "package again with the limit raised to %s (--duckdb-memory-limit "
                           "sets where it starts)", before, limit)
            try:
                return pipeline.run()
            except PipelineStepFailed as again:
                failed = again
    _count(pipeline, rows)
    return info


def _count(pipeline: dlt.Pipeline, rows: dict[str, int]) -> None:
    for t, n in _rows(pipeline).items():
        rows[t] = rows.get(t, 0) + n


def _reattribute(pipeline: dlt.Pipeline, source: DltSource, fmt: TLoaderFileFormat,
                 run_kwargs: dict[str, Any], rows: dict[str, int],
                 report: dict[str, Any], rec: ledger.Recorder) -> None:
    """Contacts changed in the load just made: re-attribute the events of the merged ones,
    now that the warehouse knows the changes (an events-only pass that reads no new events;
    see rereads.Reread.reattribute)."""
    with replacements.session(pipeline, reattribute_only=True):
        changes = reconcile.contact_changes(_events_marks(pipeline).get("attributed_load"))
        if changes is not None and not changes[0] and not changes[1]:
            # No merged-away contact holds events and no event's user_id is stale: nothing
            # to re-read, so no dlt run (~1.5 s). The next run's event reader moves the mark
            # past these contact changes (it checks them again, finding nothing).
            report.update(reattributed_ranges=0, reattribute_requests=0)  # as that run says
            return
        info = _run_within_memory(pipeline, lambda: pipeline.run(
            source.with_resources("events"), loader_file_format=fmt, **run_kwargs), rows)
    rec.loaded(info)
    replacements.apply(pipeline)
    second = _events_marks(pipeline).get("report") or {}
    report.update({k: v for k, v in second.items() if k.startswith("reattribut")})
    report["reread_requests"] = (report.get("reread_requests", 0)
                                 + second.get("reread_requests", 0))


def _events_marks(pipeline: dlt.Pipeline) -> dict[str, Any]:
    marks = pipeline.state.get("sources", {}).get("growthos", {}).get("marks", {})
    return dict(marks.get("events", {}))


def _events_backlog(pipeline: dlt.Pipeline) -> int | None:
    value = _events_marks(pipeline).get("backlog_windows")
    return None if value is None else int(value)


def _backfill_events(pipeline: dlt.Pipeline, factory: SourceFactory, windows: int,
                     fmt: TLoaderFileFormat, rows: dict[str, int],
                     progress: Callable[[BackfillProgress], None] | None,
                     table_format: TTableFormat | None, rec: ledger.Recorder,
                     feed: EventFeed) -> None:
    backlog = _events_backlog(pipeline)
    if backlog == 0:
        feed.close()
        return  # caught up: the normal run reads the tail (and gets no feed)
    try:
        _backfill_chunks(pipeline, factory, windows, fmt, rows, progress, feed, table_format,
                         rec)
    except BaseException:
        feed.close()  # no caught-up run reads what it would have read on
        raise
    feed.finish()  # its workers read on only the caught-up run's lookback


def _backfill_chunks(pipeline: dlt.Pipeline, factory: SourceFactory, windows: int,
                     fmt: TLoaderFileFormat, rows: dict[str, int],
                     progress: Callable[[BackfillProgress], None] | None, feed: EventFeed,
                     table_format: TTableFormat | None, rec: ledger.Recorder) -> None:
    done, loaded, started, before = 0, 0, time.monotonic(), None
    while True:
        chunk: dict[str, int] = {}
        info = _run_within_memory(pipeline, lambda: pipeline.run(
            factory(events_windows_per_run=windows, events_feed=feed).with_resources("events"),
            loader_file_format=fmt, **_table_format(table_format)), chunk)
        rec.loaded(info)
        for t, n in chunk.items():
            rows[t] = rows.get(t, 0) + n
        loaded += chunk.get("events", 0)
        backlog = _events_backlog(pipeline) or 0
        # A chunk takes `windows` or more (read ahead already, or one per walk).
        done += int(_events_marks(pipeline).get("run_windows", windows)) if before is None \
            else before - backlog
        before = backlog
        total = done + backlog
        elapsed = time.monotonic() - started
        rate = loaded / elapsed if elapsed else 0.0
        if progress is not None and backlog:
            eta = elapsed / done * backlog if done else 0.0
            progress(BackfillProgress(done, total, loaded, rate, eta))
        if not backlog:
            return


def _table_format(table_format: TTableFormat | None) -> dict[str, Any]:
    """`pipeline.run` keyword for the table format, when one is set."""
    return {"table_format": table_format} if table_format else {}


def _rows(pipeline: dlt.Pipeline) -> dict[str, int]:
    trace = pipeline.last_trace
    if trace is None or trace.last_normalize_info is None:
        return {}
    counts = trace.last_normalize_info.row_counts
    return {t: n for t, n in counts.items() if not t.startswith("_dlt")}
