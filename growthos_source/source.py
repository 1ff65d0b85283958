"""The `growthos` dlt source: one resource per GrowthOS list endpoint, built from `ENDPOINTS`.

    pipeline.run(growthos().with_resources("contacts", "events"))

Configuration (section `sources.growthos`): `api_key` (secret), `base_url`, `start_date`,
`end_date`, `waitlist_ids`, `funnel_ids`, `cohort_ids` and the tuning options below.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dlt
from dlt.common.typing import TSecretStrValue
from dlt.extract.resource import DltResource

from . import event_stream, readers
from .columns import declared
from .endpoints import ENDPOINTS, Endpoint, user_tables
from .errors import ConfigurationError, ScopeError
from .history import build as build_history
from .history import check as check_history
from .http import GrowthOSClient
from .incremental import iso_z, parse_ts
from .prefetch import EventFeed
from .readers import Context
from .readers.tables import DLT_ID, DLT_ID_HINT
from .warehouse.deletes import DELETE_MODES

logger = logging.getLogger("growthos_source")
DEFAULT_BASE_URL = "https://api.growthos.io/v1"
SCOPE_MODES = ("fail", "skip")


def _guard(ctx: Context, ep: Endpoint, on_missing_scope: str,
           fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Name the tables in scope errors (the user's names: a hidden walk stands for the tables
    it feeds); with `skip`, warn and load nothing for them instead."""
    def run(args: tuple[Any, ...]) -> Iterator[Any]:
        try:
            yield from fn(*args)
        except ScopeError as exc:
            tables = ", ".join(user_tables(ep.table)) or ep.table
            if on_missing_scope == "skip":
                logger.warning("skipping %s: %s", tables, exc)
                return
            exc.tables = user_tables(ep.table)
            raise

    if ep.kind in _TRANSFORMERS:
        def step(items: Any) -> Iterator[Any]:  # dlt wants the data item as first argument
            yield from run((items,))
        return step

    def gen() -> Iterator[Any]:  # a generator function: dlt can only parallelize those
        ctx.extracts[ep.table] = object()  # a new extract: transformers start afresh
        yield from run(())
    return gen


def _hints(ep: Endpoint) -> dict[str, Any]:
    # The document's columns exist from the first load, null or not (columns.py).
    columns = {**declared(ep.table, keep=ep.primary_key), **ep.columns}
    if ep.arrow:
        columns[DLT_ID] = DLT_ID_HINT  # as dlt's normalizer declares it for rows (tables.py)
    return {"name": ep.table, "primary_key": list(ep.primary_key),
            "write_disposition": ep.write_disposition,
            "columns": columns or None, "selected": not ep.opt_in}


def _check_date(name: str, value: str | None) -> str | None:
    if value in (None, ""):
        return None
    try:
        return iso_z(parse_ts(value))
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{name}={value!r} is not an ISO 8601 date or date-time: use e.g. 2025-01-31 or "
            "2025-01-31T00:00:00Z") from None


@dlt.source(name="growthos", section="growthos")
def growthos(
    api_key: TSecretStrValue = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    start_date: str | None = None,
    end_date: str | None = None,
    waitlist_ids: Sequence[str] | None = None,
    funnel_ids: Sequence[str] | None = None,
    cohort_ids: Sequence[str] | None = None,
    deletes: str = "mark",
    on_missing_scope: str = "fail",
    max_requests_per_second: float | None = None,
    workers: int = 64,
    events_window_days: float | None = None,
    events_windows_per_run: int | None = None,
    settling_days: int | None = None,
    page_size: int = 100,
    timeout: float = 30.0,
    max_attempts: int = 6,
    backoff_base: float = 0.5,
    backoff_max: float = 30.0,
    events_feed: EventFeed | None = None,
    history: Sequence[str] | None = None,
    events_lookback_seconds: float = 600,
    events_reconcile: bool = True,
    events_reread_days: int = 31,
    events_reattribute_requests: int = 1000,
    project_timezone: str | None = None,
) -> Sequence[DltResource]:
    """GrowthOS Management API resources, one per table of `endpoints.ENDPOINTS`.

    start_date / end_date: the first run loads records from start_date (default: all
        history); end_date (exclusive) bounds a backfill without touching later data.
    waitlist_ids / funnel_ids / cohort_ids: objects the API cannot list.
    deletes: "mark" (default) sets `_deleted_at` on records that vanished from the API;
        "remove" deletes them from the warehouse (erasure). Applied by `sync()` after the load.
    on_missing_scope: "fail" (default) stops on a key lacking a resource's scope; "skip" warns
        and loads the other resources.
    max_requests_per_second: cap below the plan's limit (default: learned from the
        X-RateLimit-* headers). workers: the most concurrent walks (child lists, event
        windows); how many run follows the plan's rate x the measured request time
        (http/concurrency.py), one budget for all resources.
    events_window_days: size of the event-stream windows (default: 7 days; a chunked
        backfill's windows are instead cut at day boundaries to hold ~100 pages each by the
        API's daily event counts, see backfill_plan.py). events_windows_per_run: load this many
        windows per run (a backfill chunk; `sync(..., backfill_windows=N)` loops such runs
        until the stream is caught up), and up to as many again that the chunked backfill's
        feed has already read to the end.
    timeout: seconds per request. max_attempts: tries per request on 429/5xx/timeouts/dropped
        connections/cut-off bodies; between tries a random wait of up to
        min(backoff_max, backoff_base * 2**(attempt-1)) seconds, or longer if Retry-After says so.
    history: tables to keep every version of (SCD2; `["contacts"]` -> `contacts_history`,
        see history.py).
    events_feed: set by `sync()`'s chunked backfill, which passes one feed to all its runs so
        the next chunk is read while the previous one loads (prefetch.py).
    settling_days: `daily_event_counts` re-reads only the last N days each run (default: the
        whole history, one request per 366 days, since late events change any day).
    events_lookback_seconds: an incremental run starts the event walk this far behind the
        mark, for events still being processed at the last run (the API documents 5 s p95);
        what it reads again replaces the warehouse's copy (replacements.py).
    events_reconcile: compare the API's event count per day with the warehouse's every run
        and re-read the days that differ (late events of any age); at most
        `events_reread_days` days a run, newest first (the rest on later runs).
    events_reattribute_requests: the most requests a run spends re-reading the events of
        merged or renamed contacts (rereads.py; over it, the next run continues).
    project_timezone: the zone the API's daily counts use, if not UTC (default: UTC, or the
        project's `GET /settings` timezone when that matches the counts better).
    See docs/events.md.
    """
    if deletes not in DELETE_MODES:
        raise ConfigurationError(f"deletes={deletes!r}: use one of {', '.join(DELETE_MODES)}")
    if on_missing_scope not in SCOPE_MODES:
        raise ConfigurationError(
            f"on_missing_scope={on_missing_scope!r}: use one of {', '.join(SCOPE_MODES)}")
    start, end = _check_date("start_date", start_date), _check_date("end_date", end_date)
    if start and end and start >= end:
        raise ConfigurationError(f"start_date {start} must be before end_date {end}")
    client = GrowthOSClient(base_url, api_key, timeout=timeout, max_attempts=max_attempts,
                            backoff_base=backoff_base, backoff_max=backoff_max,
                            max_requests_per_second=max_requests_per_second,
                            max_concurrency=max(1, int(workers)))
    ctx = Context(client=client, start_date=start, end_date=end,
                  ids={"waitlist_ids": list(waitlist_ids or []),
                       "funnel_ids": list(funnel_ids or []),
                       "cohort_ids": list(cohort_ids or [])},
                  deletes=deletes, workers=max(1, int(workers)), page_size=page_size,
                  events_window=dt.timedelta(days=events_window_days or 7),
                  events_window_planned=events_window_days is None,
                  events_windows_per_run=events_windows_per_run,
                  settling_days=settling_days,
                  run_started=iso_z(dt.datetime.now(dt.timezone.utc)),
                  events_feed=events_feed,
                  events_lookback=dt.timedelta(seconds=max(0.0, events_lookback_seconds)),
                  events_reconcile=bool(events_reconcile),
                  events_reread_days=max(0, int(events_reread_days)),
                  events_reattribute_requests=max(0, int(events_reattribute_requests)),
                  project_timezone=project_timezone)
    built = build_resources(ctx, on_missing_scope)
    return list(built.values()) + build_history(ctx, built, check_history(history))


_RESOURCE_READERS: dict[str, Callable[[Context, Endpoint], Iterator[Any]]] = {
    "parent": readers.read_parent, "list": readers.read_list, "object": readers.read_object,
    "objects_by_id": readers.read_by_id, "events": event_stream.read_events,
    "daily_counts": readers.read_daily_counts,
}
_TRANSFORMERS: dict[str, Callable[[Context, Endpoint], Callable[[Any], Iterator[Any]]]] = {
    "passthrough": readers.passthrough, "child": readers.child,
    "child_object": readers.child_object, "profiles": readers.profiles,
}


_PARALLEL_STEPS = ("child", "child_object")


def build_resources(ctx: Context, on_missing_scope: str) -> dict[str, DltResource]:
    """One dlt resource per endpoint entry; children are transformers of their parent."""
    built: dict[str, DltResource] = {}
    for ep in ENDPOINTS:
        if ep.kind in _RESOURCE_READERS:
            gen = _guard(ctx, ep, on_missing_scope, _bind(_RESOURCE_READERS[ep.kind], ctx, ep))
            hints = _hints(ep)
            if ep.kind == "parent":
                hints = {"name": ep.table, "selected": False}
            # Top-level walks run side by side in dlt's extract pool; the shared rate limiter
            # keeps their sum under the plan's limit.
            built[ep.table] = dlt.resource(gen, parallelized=True, **hints)
        else:
            step = _guard(ctx, ep, on_missing_scope, _TRANSFORMERS[ep.kind](ctx, ep))
            assert ep.parent is not None
            # Passthrough and profiles keep one cursor across all pages of their parent walk,
            # so they run in order on dlt's thread; per-parent children run in dlt's pool, and
            # those that read the warehouse first (refresh_on) do that read on dlt's thread
            # (readers/pool.py).
            parallel = ep.kind in _PARALLEL_STEPS
            if parallel and ep.refresh_on:
                step, parallel = readers.finish_on_pool(step), False
            built[ep.table] = dlt.transformer(step, data_from=built[ep.parent],
                                              parallelized=parallel, **_hints(ep))
    return built


def _bind(fn: Callable[[Context, Endpoint], Iterator[Any]], ctx: Context,
          ep: Endpoint) -> Callable[[], Iterator[Any]]:
    def gen() -> Iterator[Any]:
        return fn(ctx, ep)
    return gen
