"""After `abort-packages` the local schema forgets columns the warehouse already has.

A load killed after dlt created its tables, whose package is then aborted, leaves the warehouse
with typed columns the rewound local schema no longer knows. The next run must not infer those
columns again from whatever value comes first (a string into a BIGINT column fails every load
after it). Real dlt pipelines and DuckDB files; the packages are plain dlt resources so the
first value of a column can be chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
from dlt.extract.source import DltSource

from growthos_source.sync import sync
from growthos_source.warehouse import duckdb_destination, recovery


def contacts_source(*rows: dict[str, Any]) -> DltSource:
    @dlt.source(name="growthos")
    def growthos() -> Any:
        @dlt.resource(name="contacts", primary_key="id", write_disposition="merge")
        def contacts() -> Any:
            yield list(rows)
        return contacts
    return growthos()


def make_pipeline(tmp: Path) -> dlt.Pipeline:
    # a pipeline name that is not a valid schema name, as the benchmarks' are
    return dlt.pipeline("growthos schema test, 1", pipelines_dir=str(tmp / "pipelines"),
                        destination=duckdb_destination(database=str(tmp / "w.duckdb")),
                        dataset_name="growthos")


def load_schema_then_abort(p: dlt.Pipeline, source: DltSource) -> None:
    """What a run killed during its load leaves once `abort-packages` ran: the warehouse has
    the package's tables (dlt creates them first), the local schema is rewound."""
    p.extract(source, loader_file_format="parquet")
    p.normalize()
    p.sync_schema()
    p.abort_packages()


def query(p: dlt.Pipeline, sql: str) -> list[tuple[Any, ...]]:
    with p.sql_client() as c:
        return [tuple(r) for r in c.execute_sql(sql)]


def test_aborted_first_load_then_sync_puts_other_types_in_a_variant_column(tmp_path: Path) -> None:
    p = make_pipeline(tmp_path)
    load_schema_then_abort(p, contacts_source({"id": 1, "traits": {"score": 7}}))
    assert p.default_schema_name is None  # the first run's schema is gone locally

    result = sync(p, contacts_source({"id": 1, "traits": {"score": "α"}},
                                     {"id": 2, "traits": {"score": 9}}))

    assert result.load_info is not None and not result.load_info.has_failed_jobs
    rows = query(p, "SELECT id, traits__score, traits__score__v_text "
                    "FROM growthos.contacts ORDER BY id")
    assert rows == [(1, None, "α"), (2, 9, None)]


def test_aborted_later_load_restores_only_the_lost_columns(tmp_path: Path) -> None:
    p = make_pipeline(tmp_path)
    sync(p, contacts_source({"id": 1, "traits": {"plan": "pro"}}))
    load_schema_then_abort(p, contacts_source({"id": 2, "traits": {"plan": "free", "seats": 3}}))
    assert "traits__seats" not in p.default_schema.tables["contacts"]["columns"]

    added = recovery.adopt_warehouse_columns(p, "growthos")

    assert added == ["contacts.traits__seats"]
    assert p.default_schema.tables["contacts"]["columns"]["traits__seats"]["data_type"] == "bigint"
    sync(p, contacts_source({"id": 2, "traits": {"plan": "free", "seats": "many"}}))
    assert query(p, "SELECT id, traits__plan, traits__seats, traits__seats__v_text "
                    "FROM growthos.contacts ORDER BY id") == [(1, "pro", None, None),
                                                              (2, "free", None, "many")]


def test_is_a_no_op_on_a_healthy_or_empty_pipeline(tmp_path: Path) -> None:
    p = make_pipeline(tmp_path)
    assert recovery.adopt_warehouse_columns(p, "growthos") == []  # nothing loaded anywhere
    sync(p, contacts_source({"id": 1, "traits": {"score": 7}}))
    version = p.default_schema.version_hash
    assert recovery.adopt_warehouse_columns(p, "growthos") == []
    assert p.default_schema.version_hash == version


def test_is_a_no_op_where_the_destination_keeps_no_schema(tmp_path: Path) -> None:
    """dlt's `dummy` destination stores no schema versions: nothing to read back, no error."""
    p = dlt.pipeline("growthos_schema_dummy", pipelines_dir=str(tmp_path / "pipelines"),
                     destination="dummy", dataset_name="growthos")
    assert recovery.adopt_warehouse_columns(p, "growthos") == []
