"""The default DuckDB warehouse's connection settings reach the connections dlt loads with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt

from growthos_source.sync import sync
from growthos_source.warehouse import duckdb_destination


def test_loads_run_with_a_capped_buffer_pool_and_no_insertion_order(tmp_path: Path) -> None:
    @dlt.source(name="growthos")
    def growthos() -> Any:
        @dlt.resource(name="contacts", primary_key="id", write_disposition="merge")
        def contacts() -> Any:
            yield [{"id": i, "email": f"c{i}@example.com"} for i in range(3)]
        return contacts

    p = dlt.pipeline("warehouse_settings", pipelines_dir=str(tmp_path / "pipelines"),
                     destination=duckdb_destination(str(tmp_path / "w.duckdb"),
                                                    memory_limit="64MB"),
                     dataset_name="growthos")
    sync(p, growthos())
    with p.sql_client() as c:
        (order,), = c.execute_sql("SELECT current_setting('preserve_insertion_order')")
        (limit,), = c.execute_sql("SELECT current_setting('memory_limit')")
        (rows,), = c.execute_sql("SELECT count(*) FROM contacts")
    assert order is False
    assert limit.replace(" ", "") in ("64.0MB", "61.0MiB", "64.0MiB")
    assert rows == 3


def test_a_plain_path_or_a_connection_string_names_the_database(tmp_path: Path) -> None:
    """A plain path is taken as it is (dlt's parser would import SQLAlchemy to try it as a URL
    first: ~0.35 s of every command's start-up); a duckdb:/// string is still parsed."""
    import subprocess
    import sys

    plain = duckdb_destination(str(tmp_path / "w.duckdb")).config_params["credentials"]
    assert plain.database == str(tmp_path / "w.duckdb")
    url = duckdb_destination(f"duckdb:///{tmp_path / 'u.duckdb'}").config_params["credentials"]
    assert url.database == str(tmp_path / "u.duckdb")
    code = ("import sys; from growthos_source.warehouse import duckdb_destination; "
            f"duckdb_destination({str(tmp_path / 'w.duckdb')!r}); "
            "print('sqlalchemy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"RUNTIME__DLTHUB_TELEMETRY": "false",
                                          "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "False"
