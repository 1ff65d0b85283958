"""One destination per pipeline, and only destinations that can merge.

A pipeline whose state belongs to another destination or dataset is refused before anything is
read or loaded, with one line naming both and the fix; the plain filesystem destination (parquet
files, no table format) is refused with one line pointing to Delta tables. Real pipelines, a
real DuckDB file and a real PostgreSQL database.
"""

from __future__ import annotations

import json
from pathlib import Path

import dlt
import pytest
from warehouse import Warehouse, assert_equals_truth

from growthos_source.cli_errors import one_line
from growthos_source.errors import ConfigurationError


def marks(p: dlt.Pipeline) -> str:
    return json.dumps(p.state.get("sources", {}), sort_keys=True, default=str)


def test_another_destination_under_the_same_name_is_refused(make_sim, tmp_path: Path,
                                                            postgres_url: str) -> None:
    sim = make_sim(contacts=40, events=100)
    wh = Warehouse(tmp_path, sim, name="growthos")
    wh.sync(resources=("contacts",))
    before = marks(wh.pipeline)

    pg = Warehouse(tmp_path, sim, name="growthos", destination="postgres",
                   postgres_url=postgres_url)
    with pytest.raises(ConfigurationError) as err:
        pg.sync(resources=("contacts",))
    line = one_line(err.value)
    assert "\n" not in line
    assert line.startswith("pipeline growthos loads into duckdb at ")
    assert "not postgres at 127.0.0.1:" in line and "--pipeline-name" in line
    assert "growthos_test_pw" not in line  # the location has no credentials
    assert pg.tables() == set()  # nothing loaded into postgres
    assert marks(dlt.pipeline("growthos", pipelines_dir=str(tmp_path / "pipelines"))) == before

    # the same destination again is fine, and so is postgres under its own pipeline name
    again = Warehouse(tmp_path, sim, name="growthos")
    again.sync(resources=("contacts",))
    assert_equals_truth(again, "contacts")
    own = Warehouse(tmp_path, sim, name="growthos_postgres", destination="postgres",
                    postgres_url=postgres_url)
    own.sync(resources=("contacts",))
    assert_equals_truth(own, "contacts")


def test_another_dataset_under_the_same_name_is_refused(make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=20, events=50)
    Warehouse(tmp_path, sim, name="growthos").sync(resources=("api_keys",))
    other = Warehouse(tmp_path, sim, name="growthos", dataset="elsewhere")
    with pytest.raises(ConfigurationError, match="dataset gos, not duckdb at .* dataset "
                                                 "elsewhere"):
        other.sync(resources=("api_keys",))
    assert "elsewhere" not in other.query(
        "SELECT string_agg(schema_name, ',') FROM information_schema.schemata")[0][0]


def test_plain_files_on_the_filesystem_destination_are_refused(make_sim,
                                                               tmp_path: Path) -> None:
    sim = make_sim(contacts=20, events=50)
    wh = Warehouse(tmp_path, sim, destination="delta")
    wh.table_format = None  # what `--destination filesystem` would do
    with pytest.raises(ConfigurationError) as err:
        wh.sync(resources=("contacts",))
    assert 'table_format="delta"' in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "lake").exists()
