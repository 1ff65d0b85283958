"""The run ledger: `_growthos_runs`, one row per run and table, in the warehouse.

What dlt's `_dlt_loads` lacks: rows loaded and rejected, requests, retries, 429s, seconds waited
on the rate limit, the mark before and after, the error. `sync()` records a run with a
`Recorder` and writes its rows right after the data's last load committed, as a load of their
own into the same dataset: rows are counted from loads that completed, so the ledger never
claims rows that were not committed. A run that failed gets its rows too (status `failed`, the
rows its completed chunks committed, the error on one line). When a failed load left packages
pending, loading the ledger now would load those first (dlt loads pending packages before
anything new): the rows wait in the pipeline's working folder and the next run writes them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Self

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.common.schema.typing import TTableSchemaColumns

from . import tally
from .rejects import REJECTS_TABLE
from .warehouse import WarehouseError, ops

logger = logging.getLogger("growthos_source")

RUNS_TABLE = "_growthos_runs"
PENDING_FILE = "growthos_ledger_pending.jsonl"
COLUMNS: TTableSchemaColumns = {
    "run_id": {"data_type": "text", "nullable": False},
    "pipeline_name": {"data_type": "text"},
    "command": {"data_type": "text"},
    "table_name": {"data_type": "text", "nullable": False},
    "load_ids": {"data_type": "text"},
    "started_at": {"data_type": "timestamp", "timezone": True},
    "finished_at": {"data_type": "timestamp", "timezone": True},
    "status": {"data_type": "text"},
    "rows_loaded": {"data_type": "bigint"},
    "rows_rejected": {"data_type": "bigint"},
    "rows_deleted": {"data_type": "bigint"},
    "requests": {"data_type": "bigint"},
    "retries": {"data_type": "bigint"},
    "throttled_429": {"data_type": "bigint"},
    "rate_limit_wait_seconds": {"data_type": "double"},
    "mark_before": {"data_type": "text"},
    "mark_after": {"data_type": "text"},
    "error": {"data_type": "text"},
}


def source_marks(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """The marks of every table (source state `marks.<table>`), as the pipeline holds them."""
    marks = pipeline.state.get("sources", {}).get("growthos", {}).get("marks", {})
    return dict(marks) if isinstance(marks, Mapping) else {}


def newest_mark(value: Any) -> str | None:
    """One readable mark for a table: the newest timestamp among its keys (a table of child
    lists keeps one mark per parent; the event stream also keeps window bookkeeping)."""
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, list) and v and isinstance(v[0], str) and v[0][:2] in ("19", "20"):
            found.append(v[0])
        elif isinstance(v, Mapping):
            for k, inner in v.items():
                if k in ("last_date",) and isinstance(inner, str):
                    found.append(inner)
                else:
                    walk(inner)

    walk(value)
    return max(found) if found else None


class Recorder:
    """Collects one run's facts for the ledger; `sync()` drives it.

        with Recorder(pipeline) as rec:
            rec.tables(source)   # once the source is built
            rec.rows[table] += n  # rows of every pipeline.run that returned
            rec.loaded(info)     # its load ids
            rec.deleted(applied)
    """

    def __init__(self, pipeline: dlt.Pipeline, command: str = "sync") -> None:
        self.pipeline, self.command = pipeline, command
        self.run_id = str(uuid.uuid4())
        self.started = dt.datetime.now(dt.timezone.utc)
        self.table_names: list[str] = []
        self.load_ids: list[str] = []
        self.rows: dict[str, int] = {}
        self.applied: dict[str, int] = {}
        self.marks_before: dict[str, Any] = {}
        self.tally = tally.RequestTally()
        self._previous: tally.RequestTally | None = None

    def __enter__(self) -> Self:
        self._previous = tally.activate(self.tally)
        return self

    def tables(self, source: Any) -> None:
        """The tables this run loads: the source's selected resources that are tables."""
        self.table_names = [n for n in source.selected_resources if not n.startswith("_")]
        if not source_marks(self.pipeline):
            # A runner that starts empty: dlt would restore the state from the warehouse at
            # the start of the run; restore it now so the marks before are the real ones.
            try:
                ops.restore_state(self.pipeline)
            except WarehouseError as e:  # the run itself reports the warehouse, loudly
                logger.warning("state not restored before the run: %s", e)
            else:
                # dlt's first run() restores once more unless it did so itself (dlt 1.31 keeps
                # that in `_state_restored`): a second connection and state query, for the
                # state restored just now under this run's lock.
                if hasattr(self.pipeline, "_state_restored"):
                    self.pipeline._state_restored = True
        self.marks_before = {t: newest_mark(v) for t, v in source_marks(self.pipeline).items()}

    def loaded(self, info: LoadInfo | None) -> None:
        """A pipeline.run() returned: its loads committed. (sync() adds the rows they
        extracted to `self.rows`.)"""
        if info is not None:
            self.load_ids += [i for i in info.loads_ids if i not in self.load_ids]

    def deleted(self, applied: Mapping[str, int]) -> None:
        self.applied = dict(applied)

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        tally.activate(self._previous)
        try:
            write(self.pipeline, self.ledger_rows(exc))
        except Exception as e:  # noqa: BLE001  the ledger must never hide the run's own outcome
            logger.warning("the run ledger (%s) was not written: %s", RUNS_TABLE,
                           " ".join(str(e).split())[:300])

    def ledger_rows(self, exc: BaseException | None) -> list[dict[str, Any]]:
        from .cli_errors import one_line

        finished = dt.datetime.now(dt.timezone.utc)
        after = {t: newest_mark(v) for t, v in source_marks(self.pipeline).items()}
        rejected = self._rejected()
        error = None if exc is None else one_line(exc)
        status = "ok" if exc is None else "failed"
        # Some tables failed, the others loaded (isolation.TablesFailedError): per table.
        per_table = {t: one_line(f.error) for f in getattr(exc, "failures", None) or []
                     for t in f.tables}
        out = []
        for table in self.table_names or ["*"]:
            if per_table:
                error = per_table.get(table)
                status = "ok" if error is None else "failed"
            counts = self.tally.get(table)
            out.append({
                "run_id": self.run_id, "pipeline_name": self.pipeline.pipeline_name,
                "command": self.command, "table_name": table,
                "load_ids": ",".join(self.load_ids) or None,
                "started_at": self.started, "finished_at": finished, "status": status,
                "rows_loaded": self._table_rows(table), "rows_rejected": rejected.get(table, 0),
                "rows_deleted": self.applied.get(table, 0),
                "requests": counts.requests, "retries": counts.retries,
                "throttled_429": counts.throttled,
                "rate_limit_wait_seconds": round(counts.waited, 3),
                "mark_before": self.marks_before.get(table), "mark_after": after.get(table),
                "error": error,
            })
        return out

    def _table_rows(self, table: str) -> int:
        # Nested tables (`contacts__tags`) are parts of their parent's rows, not rows of it.
        return self.rows.get(table, 0) if "__" not in table else 0

    def _rejected(self) -> dict[str, int]:
        """Rejects per table in this run's loads (`_growthos_rejects` names the table)."""
        if not self.rows.get(REJECTS_TABLE) or not self.load_ids:
            return {}
        ids: dict[str, Any] = {f"l{i}": v for i, v in enumerate(self.load_ids)}
        try:
            rows = ops.read(self.pipeline, f"SELECT table_name, COUNT(*) FROM "
                            f"{{{REJECTS_TABLE}}} WHERE _dlt_load_id IN "
                            f"({', '.join('{' + k + '}' for k in ids)}) GROUP BY table_name",
                            REJECTS_TABLE, **ids)
        except WarehouseError as e:  # the ledger row says 0; the warning says why
            logger.warning("rejects per table not counted for the run ledger: %s", e)
            return {}
        return {str(t): int(n) for t, n in rows or []}


def _pending_path(pipeline: dlt.Pipeline) -> Path:
    return Path(pipeline.working_dir) / PENDING_FILE


def write(pipeline: dlt.Pipeline, rows: Iterable[dict[str, Any]]) -> None:
    """Load ledger rows (and any a previous run left waiting) as one load of `_growthos_runs`."""
    path = _pending_path(pipeline)
    waiting = _read(path)
    todo = waiting + list(rows)
    if not todo:
        return
    if pipeline.has_pending_data:
        _save(path, todo)
        logger.info("ledger rows wait for the pending load packages: %s", path)
        return
    resource = dlt.resource(todo, name=RUNS_TABLE, write_disposition="append",
                            columns=COLUMNS)
    _save(path, todo)  # kept until the rows are in a load package, in case extracting fails
    try:
        pipeline.run(resource)
    except Exception:
        if pipeline.has_pending_data:  # the rows are in a package the next run loads
            path.unlink(missing_ok=True)
        raise
    path.unlink(missing_ok=True)


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            for k in ("started_at", "finished_at"):
                if row.get(k):
                    row[k] = dt.datetime.fromisoformat(row[k])
            rows.append(row)
    return rows


def _save(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, default=_iso) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)
