"""Finish what a killed run left pending, without the duplicates a replayed load job leaves.

dlt (1.31) loads a package job by job and records each job as done only after the destination
committed it. A run killed in between (for DuckDB the window includes closing the connection,
tens of milliseconds) leaves a job that already wrote its rows marked as "started"; the next run
executes it again. For jobs that copy into their table directly (replace and append tables,
insert-only merges, nested tables of merges) the rows are then in the warehouse twice: exact
copies, with the same `_dlt_id` (or primary key and load id where rows carry no `_dlt_id`).

`finish_pending()` loads the pending packages, then removes those copies from the tables the
partially loaded packages wrote. The tables to check are recorded in a marker file in the
pipeline's working directory before the load and removed after the cleanup commits, so a run
killed during the cleanup is finished by the next one.

`adopt_warehouse_columns()` repairs the other thing a killed load leaves behind once its package
is discarded (`dlt pipeline ... abort-packages`): dlt rewinds the local schema, but the tables
and columns the load had already created stay in the warehouse with their types.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import dlt
from dlt.common.destination.client import WithStateSync
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.common.schema import Schema
from dlt.common.schema.typing import TPartialTableSchema
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.pipeline.exceptions import PipelineStepFailed

from ..errors import GrowthOSError
from . import ops
from .backends import Backend

logger = logging.getLogger("growthos_source")

MARKER = "growthos_replayed_jobs.json"


def finish_pending(pipeline: dlt.Pipeline) -> bool:
    """Load what a previous run left pending and drop rows its replayed jobs duplicated.

    Returns True when there was something to finish.
    """
    marker = os.path.join(pipeline.working_dir, MARKER)
    recovered = False
    if pipeline.has_pending_data:
        logger.warning("finishing the load packages a previous run left pending")
        todo = _read(marker)
        for load_id in pipeline.list_normalized_load_packages():
            todo.update({t: sorted(set(todo.get(t, [])) | {load_id})
                         for t in _tables_written(pipeline, load_id)})
        if todo:
            _write(marker, todo)
        try:
            pipeline.run()
        except PipelineStepFailed as exc:
            from .refusals import explain

            refused = explain(pipeline, exc)  # the package the warehouse refuses: say so
            if refused is not None:
                raise refused from exc
            raise
        recovered = True
    todo = _read(marker)
    if todo:
        removed = drop_replayed_rows(pipeline, todo)
        if removed:
            logger.warning("removed rows duplicated by load jobs replayed after a crash: %s",
                           removed)
        os.remove(marker)
    return recovered


def adopt_warehouse_columns(pipeline: dlt.Pipeline, schema_name: str) -> list[str]:
    """Put back into the local schema the tables and columns the warehouse has but the local
    schema lost, with the warehouse's types. Returns the `table.column` names added.

    After an aborted package the local schema no longer knows a column the warehouse already
    created (say `traits__score` as BIGINT). The next run would infer the column again from
    whichever value comes first; a string would make normalize write text into a BIGINT column
    and every later load would fail. Knowing the warehouse's type, normalize puts such values in
    a variant column (`traits__score__v_text`) as on any other run. Only a warehouse schema the
    local one never saw (not its current nor a previous version) is read; nothing is removed or
    retyped, so this is a no-op on healthy pipelines.
    """
    local = pipeline.schemas.get(schema_name)
    try:
        # A client needs a schema; with none left locally, a blank one of the same name (what
        # dlt's own restore from the destination does; dlt is pinned to 1.31.x).
        client = (pipeline.destination_client(schema_name) if local is not None
                  else pipeline._get_destination_clients(Schema(schema_name))[0])
        with client:
            if not isinstance(client, WithStateSync) or not client.is_storage_initialized():
                return []  # a destination that stores no schema has nothing to restore
            stored = client.get_stored_schema(schema_name)
    except DestinationUndefinedEntity:
        return []  # no dataset or no version table yet: nothing was ever loaded
    if stored is None:
        return []
    if local is not None and stored.version_hash in (local.version_hash,
                                                     *local.previous_hashes):
        return []
    remote = Schema.from_dict(json.loads(stored.schema))
    target = local.clone() if local is not None else Schema(schema_name)
    added: list[str] = []
    for table in remote.data_tables(include_incomplete=True):
        name = table["name"]
        have = target.tables[name]["columns"] if name in target.tables else {}
        missing = {c: col for c, col in table.get("columns", {}).items() if c not in have}
        if not missing:
            continue
        partial: TPartialTableSchema = {**table} if name not in target.tables else {"name": name}
        partial["columns"] = missing
        target.update_table(partial, normalize_identifiers=False)
        added += [f"{name}.{c}" for c in missing]
    if added:
        pipeline.schemas.save_schema(target)
        logger.warning("the warehouse has columns the local schema had lost (an aborted load "
                       "package?); adopted them with their warehouse types: %s", ", ".join(added))
    return added


def _tables_written(pipeline: dlt.Pipeline, load_id: str) -> set[str]:
    """Data tables of a pending package. Every pending package counts, not only those that
    had started loading: one extracted from stale state (an overlapping run) can hold append
    rows that a later package already loaded."""
    jobs = pipeline.get_load_package_info(load_id).jobs
    return {j.job_file_info.table_name for state in jobs.values() for j in state
            if not j.job_file_info.table_name.startswith("_dlt")}


def drop_replayed_rows(pipeline: dlt.Pipeline, tables: dict[str, list[str]]) -> dict[str, int]:
    """Keep one copy of rows that replayed load jobs put into `tables` (name -> load ids of
    the packages finished after a crash). Returns rows removed per table.

    Two kinds of copies: a job run twice inserts exact copies (the same `_dlt_id`, or for
    tables without it the same primary key within one load id); a package extracted from
    stale state (an overlapping run, before the lock existed) holds rows of an append table
    that an earlier load already has: for append tables with a primary key, rows of those
    load ids whose key is already in the table with an earlier load id go.
    """
    schema_tables = pipeline.default_schema.tables
    removed: dict[str, int] = {}
    try:
        with ops.session(pipeline) as b:
            for table, load_ids in sorted(tables.items()):
                schema = schema_tables.get(table, {})
                if not schema.get("columns"):
                    continue
                try:
                    n = _dedupe(b, table, schema, load_ids)
                except DatabaseUndefinedRelation:
                    continue  # nothing was loaded into it
                if n:
                    removed[table] = n
    except GrowthOSError:
        raise
    except Exception as exc:
        raise ops.WarehouseError(
            f"cannot check the {ops.destination_type(pipeline)} warehouse for rows a replayed "
            f"load duplicated: {' '.join(str(exc).split())[:300]}; the next run checks "
            "again") from exc
    return removed


_LOAD_ID = "CAST({} AS DECIMAL(24, 9))"  # load ids compared as numbers (see deletes.py)


def _dedupe(b: Backend, table: str, schema: Any, load_ids: list[str]) -> int:
    columns = schema["columns"]
    col, t = b.column, b.table(table)
    pk = [c for c, v in columns.items() if v.get("primary_key")]
    loads = ("_dlt_load_id", load_ids)
    in_loads = f"{col('_dlt_load_id')} IN ({', '.join(b.literal(i) for i in load_ids)})"
    removed = 0
    # 1. exact copies of one job run twice
    if "_dlt_id" in columns:
        key, where, also = "_dlt_id", "", None
    elif len(pk) == 1 and "_dlt_load_id" in columns:
        key, where, also = pk[0], f"WHERE {in_loads}", loads
    else:
        key = ""
    if key:
        dup = b.query(f"SELECT {col(key)}, COUNT(*) FROM {t} {where} GROUP BY {col(key)} "
                      f"HAVING COUNT(*) > 1")
        if dup:
            b.keep_one_copy(table, key, [r[0] for r in dup], also)
            removed += sum(int(r[1]) - 1 for r in dup)
    # 2. append rows of a stale package that an earlier load already holds
    if schema.get("write_disposition") == "append" and len(pk) == 1 and load_ids:
        k, lid = col(pk[0]), col("_dlt_load_id")
        stale = b.query(
            f"SELECT t.{k}, t.{lid} FROM {t} t WHERE t.{in_loads} AND EXISTS (SELECT 1 FROM "
            f"{t} o WHERE o.{k} = t.{k} AND {_LOAD_ID.format('o.' + lid)} < "
            f"{_LOAD_ID.format('t.' + lid)})")
        by_load: dict[str, list[Any]] = {}
        for value, load_id in stale:
            by_load.setdefault(str(load_id), []).append(value)
        for load_id, values in by_load.items():
            b.delete_in(table, pk[0], values, ("_dlt_load_id", [load_id]))
        removed += len(stale)
    return removed


def _read(path: str) -> dict[str, list[str]]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return {str(k): [str(i) for i in v] for k, v in data.items()}
    except FileNotFoundError:
        return {}


def _write(path: str, data: dict[str, list[str]]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
