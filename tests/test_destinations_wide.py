"""A table of ~3,000 columns (free-form contact traits) loads into the default, memory-capped
DuckDB warehouse: the cap is fitted to the widest table instead of failing every retry.
Real dlt pipeline and DuckDB file; a plain dlt resource chooses the shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
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
