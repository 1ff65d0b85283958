"""Checks before a run touches anything: the destination can hold GrowthOS tables, and it is
the one this pipeline's state belongs to.

A pipeline's state (the marks: how far each table was read) describes one warehouse. Run under
the same pipeline name against another destination or dataset, dlt only logs a warning, keeps
the marks and loads just what changed since: the new warehouse silently misses everything
before. So the first successful sync records where it loaded (`growthos_destination.json` in
the working directory: destination type, dataset, and the location without credentials) and
every later sync refuses another one with one line that names both and the fix. (dlt itself
rewrites the destination in its `state.json` as soon as `dlt.pipeline()` is called, so that
file cannot tell.)

Plain files on the filesystem destination (parquet, jsonl) cannot merge or delete: merges fall
back to appends and duplicate every updated record. Delta tables can; the filesystem
destination is accepted only with `table_format="delta"`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import dlt

from ..errors import ConfigurationError
from .ops import destination_type

MARKER = "growthos_destination.json"
TABLE_FORMATS = ("delta",)


def check_table_format(pipeline: dlt.Pipeline, table_format: str | None) -> None:
    """Refuse the filesystem destination unless its tables are Delta tables."""
    if destination_type(pipeline) == "filesystem" and table_format not in TABLE_FORMATS:
        got = f'table_format="{table_format}"' if table_format else "plain files"
        raise ConfigurationError(
            f"the filesystem destination with {got} cannot merge or delete rows, so updated "
            "records would be duplicated: use Delta tables (table_format=\"delta\"; pipeline "
            "script: --destination delta)")


def where_it_loads(pipeline: dlt.Pipeline) -> dict[str, str]:
    """Destination type, dataset and location (no credentials) of the pipeline."""
    return {"destination": destination_type(pipeline), "dataset": pipeline.dataset_name,
            "location": _location(pipeline)}


def _location(pipeline: dlt.Pipeline) -> str:
    try:
        config = pipeline.destination_client().config
    except Exception:  # noqa: BLE001  unresolvable config: dlt reports it when the run starts
        return ""
    bucket = getattr(config, "bucket_url", None)
    if bucket:
        return str(bucket)
    creds: Any = getattr(config, "credentials", None)
    if creds is None:
        return ""
    host, port, db = (getattr(creds, a, None) for a in ("host", "port", "database"))
    if host:
        return f"{host}{f':{port}' if port else ''}/{db or ''}"
    if isinstance(db, str) and db:
        return os.path.abspath(db) if "://" not in db and not db.startswith(":") else db
    return ""


def _describe(d: dict[str, str]) -> str:
    where = f" at {d['location']}" if d.get("location") else ""
    return f"{d.get('destination')}{where}, dataset {d.get('dataset')}"


def check_one_destination(pipeline: dlt.Pipeline) -> None:
    """Refuse a pipeline whose state belongs to another destination or dataset."""
    recorded = _read(pipeline)
    if recorded is None:
        return
    now = where_it_loads(pipeline)
    same = (recorded.get("destination") == now["destination"]
            and recorded.get("dataset") == now["dataset"]
            and (not recorded.get("location") or not now["location"]
                 or recorded["location"] == now["location"]))
    if not same:
        raise ConfigurationError(
            f"pipeline {pipeline.pipeline_name} loads into {_describe(recorded)}, not "
            f"{_describe(now)}: its state (how far each table was read) belongs there and "
            f"would skip the history in the new one; give the new destination its own "
            f"pipeline (--pipeline-name growthos_{now['destination']}), or reset this one "
            f"(docs/destinations.md)")


def record(pipeline: dlt.Pipeline) -> None:
    """Remember where this pipeline loads (after a successful sync; kept once written)."""
    if _read(pipeline) is not None:
        return
    path = os.path.join(pipeline.working_dir, MARKER)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(where_it_loads(pipeline), f)
    os.replace(tmp, path)


def _read(pipeline: dlt.Pipeline) -> dict[str, str] | None:
    try:
        with open(os.path.join(pipeline.working_dir, MARKER), encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    return {str(k): str(v) for k, v in data.items()}
