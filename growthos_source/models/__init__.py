"""Analytics-ready SQL views over the loaded GrowthOS tables, created in the pipeline's dataset.

    from growthos_source.models import create_models
    create_models(pipeline)          # after a sync: ['contacts_current', 'survey_nps', ...]

Idempotent (each view is dropped and created again, in one transaction), on DuckDB and
PostgreSQL. A view whose tables were not loaded is skipped (logged, and any older copy of it
dropped, since it would no longer work). The views, their columns and the definitions they
share with the API are described in docs/sql-models.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dlt

from ..errors import GrowthOSError
from ..warehouse import ops
from .catalog import MODELS, TABLES, Model
from .render import Warehouse, check_timezone

__all__ = ["MODEL_NAMES", "ModelPlan", "create_models", "drop_models", "plan_models"]

logger = logging.getLogger("growthos_source")

MODEL_NAMES: tuple[str, ...] = tuple(m.name for m in MODELS)
# Destinations whose SQL accepts COMMENT ON VIEW: the description is stored with the view.
_COMMENTS = {"duckdb", "motherduck", "postgres"}


@dataclass
class ModelPlan:
    """Which views a dataset can have: `create` in order, `skipped` view -> missing tables."""

    create: list[Model] = field(default_factory=list)
    skipped: dict[str, tuple[str, ...]] = field(default_factory=dict)


def plan_models(pipeline: dlt.Pipeline, *, timezone: str = "UTC") -> tuple[ModelPlan, Warehouse]:
    """Look at the dataset's real tables and columns and decide which views can be built."""
    check_timezone(timezone)
    columns = _storage_columns(pipeline)
    with ops.session(pipeline) as b:
        wh = Warehouse(columns=columns, quote=b.column, qualify=b.table, timezone=timezone)
    plan = ModelPlan()
    for m in MODELS:
        missing = tuple(t for t in m.requires if not wh.has(t))
        if missing:
            plan.skipped[m.name] = missing
        else:
            plan.create.append(m)
    return plan, wh


def create_models(pipeline: dlt.Pipeline, *, timezone: str = "UTC") -> list[str]:
    """Create (or re-create) every view whose tables exist in `pipeline`'s dataset; returns the
    names created. `timezone`: the IANA zone whose calendar days and months `daily_events` and
    `survey_nps_monthly` use (default UTC, as the API's own daily counts do)."""
    plan, wh = plan_models(pipeline, timezone=timezone)
    comments = ops.destination_type(pipeline) in _COMMENTS
    with ops.session(pipeline) as b:
        for m in plan.create:
            name = b.table(m.name)
            statements = [f"DROP VIEW IF EXISTS {name}", f"CREATE VIEW {name} AS\n{m.sql(wh)}"]
            if comments:
                statements.append(f"COMMENT ON VIEW {name} IS {b.literal(m.description)}")
            with _failing_as(pipeline, f"create view {m.name}"), b.transaction():
                for sql in statements:
                    b.query(sql)
        for view, missing in plan.skipped.items():
            with _failing_as(pipeline, f"drop view {view}"):
                b.query(f"DROP VIEW IF EXISTS {b.table(view)}")
            logger.warning("models: skipped %s: needs table%s %s, not loaded", view,
                           "s" if len(missing) > 1 else "", ", ".join(missing))
    return [m.name for m in plan.create]


def drop_models(pipeline: dlt.Pipeline) -> None:
    """Drop every view `create_models` makes (PostgreSQL will not drop a table a view reads:
    drop the views before `refresh=` or `pipeline.drop()`, create them again after)."""
    _check_sql(pipeline)
    with ops.session(pipeline) as b:
        for view in reversed(MODEL_NAMES):
            with _failing_as(pipeline, f"drop view {view}"):
                b.query(f"DROP VIEW IF EXISTS {b.table(view)}")


def _check_sql(pipeline: dlt.Pipeline) -> None:
    if not pipeline.default_schema_name or pipeline.destination is None:
        raise ValueError(f"models: pipeline {pipeline.pipeline_name!r} has not loaded anything "
                         "yet; run a sync first")
    if ops.is_delta(pipeline):
        raise ValueError("models: views need a SQL warehouse (duckdb, postgres); the "
                         "filesystem destination has none")


def _storage_columns(pipeline: dlt.Pipeline) -> dict[str, frozenset[str]]:
    """Table -> column names of the model tables present in the dataset (from the warehouse's
    information schema, not dlt's schema: the views run against what is really there)."""
    _check_sql(pipeline)
    with _failing_as(pipeline, "read the tables' columns"), \
            pipeline.destination_client() as job_client:
        get = getattr(job_client, "get_storage_tables", None)
        if get is None:
            raise ValueError(f"models: destination {ops.destination_type(pipeline)!r} has no "
                             "SQL tables to build views on; use duckdb or postgres")
        return {name: frozenset(cols) for name, cols in get(TABLES) if cols}


@contextmanager
def _failing_as(pipeline: dlt.Pipeline, what: str) -> Iterator[None]:
    """Any destination error as one WarehouseError line naming what was being done."""
    try:
        yield
    except (GrowthOSError, ValueError):
        raise
    except Exception as exc:
        short = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ops.WarehouseError(
            f"models: cannot {what} in the {ops.destination_type(pipeline)} warehouse "
            f"(dataset {pipeline.dataset_name}): {short}") from exc
