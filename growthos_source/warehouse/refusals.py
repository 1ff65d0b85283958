"""A load package the warehouse refuses: say which record of which table and why, and clear it
without losing other data.

dlt keeps a package whose load job fails (a value the destination refuses, e.g. a NUL character
in a PostgreSQL text column; a constraint a user added, e.g. NOT NULL) pending, and every later
run loads it first and fails the same way: the pipeline is stuck until the warehouse or the
record changes. The connector:

- turns the failure into one line (`RefusedLoadError`), on the run that hits it and on every
  later one: the table, the record(s) the destination named (found in the package's files from
  the column the error names), the destination's reason, and the two ways out. The diagnosis
  is also kept in `growthos_refused.json` in the pipeline's working directory;
- `set_aside(pipeline)` (`growthos-sync reset --pending`) clears it: the refused records are
  noted in `growthos_set_aside.json` (table, id, cursor value, reason); rows the package had
  already committed are deleted; dlt's `abort_packages()` rewinds the local state and schemas
  to before the package. The next sync reads those tables again from the older marks; the
  set-aside records go to `_growthos_rejects` with the reason (rejects.py), the rest loads.
  A set-aside record that changes (another cursor value) is tried again.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
from dlt.load.exceptions import LoadClientJobException
from dlt.pipeline.exceptions import PipelineStepFailed

from ..endpoints import BY_TABLE
from ..errors import GrowthOSError
from . import ops
from .deletes import _nested

logger = logging.getLogger("growthos_source")

REFUSED = "growthos_refused.json"
SET_ASIDE = "growthos_set_aside.json"
FIX = ("change the warehouse so it takes them (e.g. drop the constraint) and run again, or set "
       "the record(s) "
       "aside: `growthos-sync reset --pending` (they go to _growthos_rejects, the rest loads; "
       "docs/destinations.md)")


class RefusedLoadError(GrowthOSError):
    """The warehouse refuses rows of a pending load package (one line: table, records, why)."""


def _job_failure(exc: BaseException) -> LoadClientJobException | None:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, LoadClientJobException):
            return e
        e = getattr(e, "exception", None) or e.__cause__ or e.__context__
    return None


def explain(pipeline: dlt.Pipeline, exc: BaseException) -> RefusedLoadError | None:
    """A RefusedLoadError for a load step that failed on a job, None for any other failure.
    The diagnosis is saved for `set_aside()`."""
    if not isinstance(exc, PipelineStepFailed) or exc.step != "load":
        return None
    job = _job_failure(exc)
    if job is None:
        return None
    table = str(job.job_id).split(".", 1)[0]
    reason = _reason(str(getattr(job, "failed_message", "") or exc))
    records = _refused_records(pipeline, job.load_id, table, reason)
    data = {"load_id": job.load_id, "table": table, "reason": reason, "records": records}
    _write(Path(pipeline.working_dir) / REFUSED, data)
    named = records.get(table, [])
    if not records:  # nothing in the package matches the message: maybe not the data at all
        return RefusedLoadError(
            f"a load job of table {table} keeps failing (load package {job.load_id}, pending; "
            f"the next run tries it again): {reason}; if the warehouse refuses its rows, "
            "`growthos-sync reset --pending` clears the package and the next run reads those "
            "tables again (docs/destinations.md)")
    first = table if named else min(records)  # the failed job's table, if it has any
    ids = records[first]
    which = ", ".join(str(r["id"]) for r in ids[:5]) + (" ..." if len(ids) > 5 else "")
    others = sum(len(v) for t, v in records.items() if t != first)
    more = (f" (and {others} more of tables {', '.join(sorted(set(records) - {first}))})"
            if others else "")
    return RefusedLoadError(f"the warehouse refuses {which} of table {first}{more} (load "
                            f"package {job.load_id}, pending): {reason}; {FIX}")


def _reason(message: str) -> str:
    """The destination's own sentence out of dlt's job message (a traceback, often)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for ln in reversed(lines):
        m = re.search(r".*(?:Error|Exception|ERROR):\s*(.+)", ln)
        if m and not ln.startswith("File ") and "Traceback" not in ln:
            text = m.group(1)
            context = next((c for c in lines if c.startswith("CONTEXT:")), "")
            return " ".join(f"{text} {context}".split())[:300]
    return " ".join(message.split())[:300]


def _named_columns(reason: str, columns: set[str]) -> list[str]:
    """Columns of the table that the destination's message names."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", reason))
    return sorted(c for c in columns if c in words)


def _package_rows(pipeline: dlt.Pipeline, load_id: str,
                  table: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(table, row) of the package's data files of `table` (None: of every table), any job
    state."""
    import pyarrow.parquet as pq

    root = Path(pipeline.working_dir) / "load" / "normalized" / load_id
    for path in sorted(root.glob(f"*/{table}.*" if table else "*/*.*")):
        name = path.name
        t = name.split(".", 1)[0]
        if t.startswith("_dlt"):
            continue
        if name.endswith(".parquet"):
            for row in pq.read_table(path).to_pylist():
                yield t, row
        elif ".jsonl" in name:
            import gzip

            opener: Any = gzip.open if _gzipped(path) else open
            with opener(path, "rt", encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        yield t, json.loads(line)


def _gzipped(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _refused_records(pipeline: dlt.Pipeline, load_id: str, table: str,
                     reason: str) -> dict[str, list[dict[str, Any]]]:
    """table -> the package's rows that match what the message says is wrong: a NUL character
    (in any table of the package: the warehouse would refuse each), or null in a column of
    `table` it names."""
    nul = "0x00" in reason or "\\x00" in reason or "\\u0000" in reason
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        for t, row in _package_rows(pipeline, load_id, None if nul else table):
            if nul:
                bad = any(isinstance(v, str) and "\x00" in v for v in row.values())
            else:
                cols = _named_columns(reason, set(row))
                bad = bool(cols) and "null" in reason.lower() and any(row.get(c) is None
                                                                      for c in cols)
            ep = BY_TABLE.get(t)
            key = ep.primary_key[-1] if ep is not None and ep.primary_key else "id"
            if bad and row.get(key) is not None:
                cursor = ep.cursor if ep is not None else None
                out.setdefault(t, []).append(
                    {"id": str(row[key]),
                     "version": None if cursor is None else _text(row.get(cursor))})
    except (OSError, ValueError) as exc:  # an unreadable job file: say so, do not guess
        logger.warning("could not read the refused package's files: %s", exc)
    return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    iso = getattr(value, "isoformat", None)
    return str(iso()) if callable(iso) else str(value)


def set_aside(pipeline: dlt.Pipeline) -> dict[str, Any] | None:
    """Clear the refused package (see the module docstring). Returns the diagnosis acted on,
    None when no package is pending."""
    if not pipeline.has_pending_data:
        return None
    path = Path(pipeline.working_dir) / REFUSED
    refused = _read(path) or {}
    pending = [*pipeline.list_normalized_load_packages(),
               *pipeline.list_extracted_load_packages()]
    entries = _read(Path(pipeline.working_dir) / SET_ASIDE) or {}
    for table, records in (refused.get("records") or {}).items():
        for r in records:
            entries.setdefault(table, {})[r["id"]] = {"version": r.get("version"),
                                                       "reason": refused.get("reason")}
    _write(Path(pipeline.working_dir) / SET_ASIDE, entries)
    for load_id in pipeline.list_normalized_load_packages():
        _delete_committed(pipeline, load_id)
    pipeline.abort_packages()
    path.unlink(missing_ok=True)
    return {**refused, "packages": pending}


def _delete_committed(pipeline: dlt.Pipeline, load_id: str) -> None:
    """Delete what jobs of the package already committed (rows with its load id, their nested
    rows first): the rewound marks read those records again."""
    tables = pipeline.default_schema.tables
    jobs = pipeline.get_load_package_info(load_id).jobs.get("completed_jobs", [])
    written = {j.job_file_info.table_name for j in jobs}
    # The state too: a committed state row would bring the advanced marks back from the
    # warehouse (dlt restores a newer state than the local one).
    roots = sorted(t for t in written if "_dlt_load_id" in tables.get(t, {}).get("columns", {})
                   and (not t.startswith("_dlt") or t == "_dlt_pipeline_state"))
    if not roots:
        return
    with ops.session(pipeline) as b, b.transaction():
        for t in roots:
            ids = [r[0] for r in b.query(f"SELECT {b.column('_dlt_id')} FROM {b.table(t)} "
                                         f"WHERE {b.column('_dlt_load_id')} = "
                                         f"{b.literal(load_id)}")] \
                if "_dlt_id" in tables[t]["columns"] else []
            for nested in _nested(tables, t) if ids else []:
                b.delete_in(nested, "_dlt_root_id", ids)
            b.delete_in(t, "_dlt_load_id", [load_id])
            logger.warning("deleted the rows the refused package %s had committed to %s",
                           load_id, t)


def load_set_aside(pipeline: dlt.Pipeline) -> dict[str, dict[str, dict[str, Any]]]:
    """table -> {record id -> {version, reason}} of the records set aside for this pipeline."""
    return _read(Path(pipeline.working_dir) / SET_ASIDE) or {}


def _read(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _write(path: Path, data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
