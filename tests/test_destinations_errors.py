"""A warehouse that cannot be read is an error the user sees, never a silent "first run".

During extract the connector reads the warehouse (ids for deletes, values for refreshes); if
that read fails, treating it as "nothing loaded yet" would reload or miss deletes silently.
Real PostgreSQL server; the second pipeline object has a wrong password.
"""

from __future__ import annotations

from pathlib import Path

import dlt
import pytest
from warehouse import Warehouse

from growthos_source.cli_errors import one_line
from growthos_source.warehouse import WarehouseError, ops


def test_an_unreadable_warehouse_raises_one_line_naming_the_table(
        make_sim, tmp_path: Path, postgres_url: str) -> None:
    wh = Warehouse(tmp_path, make_sim(contacts=20, events=50), name="growthos",
                   destination="postgres", postgres_url=postgres_url)
    wh.sync(resources=("contacts",))
    assert ops.known_ids("contacts", pipeline=wh.pipeline)  # readable: the loaded ids

    wrong = postgres_url.replace(":growthos_test_pw@", ":not_the_password@")
    broken = dlt.pipeline("growthos", pipelines_dir=str(tmp_path / "pipelines"),
                          destination=dlt.destinations.postgres(wrong), dataset_name="gos")
    with pytest.raises(WarehouseError) as err:
        ops.known_ids("contacts", pipeline=broken)
    line = one_line(err.value)
    assert line.startswith("cannot read table contacts in the postgres warehouse (dataset gos)")
    assert "\n" not in line and "not_the_password" not in line
    # a table that was never loaded is "nothing there yet", not an error
    assert ops.known_ids("segments", pipeline=wh.pipeline) is None


def test_event_reads_that_fail_fail_the_events_table_loudly(make_sim, tmp_path: Path) -> None:
    """The event reader's warehouse reads (ids behind the mark, per-day counts) that fail are
    not taken for a first run (which would re-read and duplicate the stream, or skip the
    reconciliation): `events` fails with one line naming it, the other tables load."""
    import duckdb

    from growthos_source.isolation import TablesFailedError

    sim = make_sim(contacts=20, events=100)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts", "events"))
    with duckdb.connect(wh.db) as con:  # someone renamed a column the connector reads
        con.execute('ALTER TABLE gos.events RENAME COLUMN "timestamp" TO ts_renamed')
    with pytest.raises(TablesFailedError) as err:
        wh.sync(resources=("contacts", "events"))
    line = one_line(err.value)
    assert err.value.tables == ("events",), line
    assert "\n" not in line and "of table events in the warehouse" in line, line
    assert err.value.result.load_info is not None  # contacts loaded
