"""A table of ~3,000 columns (free-form contact traits) loads into the default, memory-capped
DuckDB warehouse: the cap is fitted to the widest table instead of failing every retry.
Real dlt pipeline and DuckDB file; a plain dlt resource chooses the shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.extract.source import DltSource

from growthos_source.sync import sync
from growthos_source.warehouse import DEFAULT_MEMORY_LIMIT, duckdb_destination
from growthos_source.warehouse.duckdb import parse_size

TRAITS, ROWS = 3000, 300


def wide_contacts() -> DltSource:
    @dlt.source(name="growthos")
    def growthos() -> Any:
        @dlt.resource(name="contacts", primary_key="id", write_disposition="merge")
        def contacts() -> Any:
            yield [{"id": f"ct_{i}", "traits": {f"t{j}": f"v{i}.{j}" for j in range(TRAITS)}}
                   for i in range(ROWS)]
        return contacts
    return growthos()


def test_a_table_of_3000_trait_columns_loads_under_the_default_cap(tmp_path: Path) -> None:
    dest = duckdb_destination(str(tmp_path / "wide.duckdb"))
    p = dlt.pipeline("wide", pipelines_dir=str(tmp_path / "p"), destination=dest,
                     dataset_name="growthos")
    result = sync(p, wide_contacts())
    assert result.rows["contacts"] == ROWS
    with p.sql_client() as c:
        n, cells = c.execute_sql("SELECT COUNT(*), COUNT(traits__t2999) FROM contacts")[0]
        cols = c.execute_sql("SELECT COUNT(*) FROM information_schema.columns WHERE "
                             "table_schema = 'growthos' AND table_name = 'contacts' AND "
                             "column_name LIKE 'traits__t%'")[0][0]
        sample = c.execute_sql("SELECT traits__t1234 FROM contacts WHERE id = 'ct_7'")[0][0]
    assert (n, cells, cols, sample) == (ROWS, ROWS, TRAITS, "v7.1234")
    limit = dest.config_params["credentials"].global_config["memory_limit"]
    assert parse_size(limit) > parse_size(DEFAULT_MEMORY_LIMIT)  # fitted, not uncapped


ROWS_MERGED = 20_000


def long_contacts() -> DltSource:
    @dlt.source(name="growthos")
    def growthos() -> Any:
        @dlt.resource(name="contacts", primary_key="id", write_disposition="merge")
        def contacts() -> Any:
            yield [{"id": f"ct_{i}", "email": f"user{i}@example.com" * 5, "n": i}
                   for i in range(ROWS_MERGED)]
        return contacts
    return growthos()


def test_a_merge_that_outgrows_the_cap_loads_with_the_cap_raised(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    # A narrow table whose merge needs more than the cap (at 128MB: 200,000 contacts beside
    # other tables' jobs). One attempt per limit keeps the test short; dlt's default is five.
    monkeypatch.setenv("LOAD__RAISE_ON_MAX_RETRIES", "1")
    dest = duckdb_destination(str(tmp_path / "long.duckdb"), memory_limit="4MB")
    p = dlt.pipeline("long", pipelines_dir=str(tmp_path / "p"), destination=dest,
                     dataset_name="growthos")
    with caplog.at_level("WARNING", logger="growthos_source"):
        result = sync(p, long_contacts())
    assert result.rows["contacts"] == ROWS_MERGED
    assert not p.has_pending_data
    with p.sql_client() as c:
        n, ids, top = c.execute_sql("SELECT COUNT(*), COUNT(DISTINCT id), MAX(n) FROM contacts")[0]
        email = c.execute_sql("SELECT email FROM contacts WHERE id = 'ct_123'")[0][0]
    assert (n, ids, top, email) == (ROWS_MERGED, ROWS_MERGED, ROWS_MERGED - 1,
                                    "user123@example.com" * 5)
    limit = dest.config_params["credentials"].global_config["memory_limit"]
    assert parse_size(limit) > parse_size("4MB")
    raised = [r.getMessage() for r in caplog.records if "ran out of memory" in r.getMessage()]
    assert raised and "raised to" in raised[0]
