"""A DuckDB warehouse held open during a sync (warehouse/checkpoints.py): dlt's closes leave
DuckDB's log alone, `start()` moves it into the file on a thread while reads go on, and the
end of the block checkpoints the rest (leaving DuckDB's vacuum to a later checkpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import duckdb

from growthos_source.warehouse import checkpoints, duckdb_destination
from growthos_source.warehouse import duckdb as warehouse_duckdb


def _pipeline(tmp: Path, name: str = "checkpoints") -> Any:
    return dlt.pipeline(name, pipelines_dir=str(tmp / "pipelines"),
                        destination=duckdb_destination(str(tmp / "w.duckdb")),
                        dataset_name="gos")


def _rows(first: int, n: int) -> list[dict[str, Any]]:
    return [{"id": i, "note": f"row {i} " * 8} for i in range(first, first + n)]


def _log(tmp: Path) -> int:
    """Bytes of DuckDB's write-ahead log beside the database file (0: none)."""
    wal = tmp / "w.duckdb.wal"
    return wal.stat().st_size if wal.exists() else 0


def test_the_log_reaches_the_file_in_the_background_and_at_the_end(tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    p.run(_rows(0, 10), table_name="notes")
    assert _log(tmp_path) == 0  # dlt's close was the last: DuckDB checkpointed
    with checkpoints.deferred(p) as held:
        assert held.connection is not None
        p.run(_rows(10, 5000), table_name="notes")
        # dlt closed its connection after the load, but it was not the database's last.
        assert _log(tmp_path) > 0
        held.start()
        with p.sql_client() as c:  # reads go on beside the checkpoint
            (n,), = c.execute_sql("SELECT count(*) FROM notes")
        assert n == 5010
        assert held.thread is not None
        held.thread.join()
        assert held.errors == []
        assert _log(tmp_path) == 0
        p.run(_rows(5010, 10), table_name="notes")
        assert _log(tmp_path) > 0
    assert _log(tmp_path) == 0  # the held connection was the last: the rest is in the file
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        (n, distinct), = con.execute("SELECT count(*), count(DISTINCT id) FROM gos.notes"
                                     ).fetchall()
    assert (n, distinct) == (5020, 5020)


def _row_groups(con: Any, table: str) -> int:
    (n,), = con.execute("SELECT count(DISTINCT row_group_id) FROM "
                        f"pragma_storage_info('{table}')").fetchall()
    return int(n)


def test_the_last_checkpoint_leaves_the_vacuum_to_a_later_one(tmp_path: Path) -> None:
    """After a background checkpoint, the sync's last one keeps rows deleted since in their
    row groups (DuckDB's vacuum would rewrite them); the setting is back afterwards, and the
    next checkpoint that follows a write compacts them."""
    p = _pipeline(tmp_path)
    p.run(_rows(0, 10), table_name="notes")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as own:
        # Three full row groups; most rows of the first two deleted: a vacuum merges them.
        own.execute("CREATE TABLE gos.big AS SELECT range AS id, 'note ' || range AS note "
                    "FROM range(3 * 122880)")
        own.execute("CHECKPOINT")
        assert _row_groups(own, "gos.big") == 3
        (default,), = own.execute("SELECT current_setting('max_vacuum_tasks')").fetchall()
        with checkpoints.deferred(p) as held:
            held.start()
            assert held.thread is not None
            held.thread.join()
            own.execute("DELETE FROM gos.big WHERE id < 2 * 122880 AND id % 10 < 7")
        assert held.errors == []
        assert _log(tmp_path) == 0  # checkpointed although `own` keeps the database open
        assert _row_groups(own, "gos.big") == 3
        (setting,), = own.execute("SELECT current_setting('max_vacuum_tasks')").fetchall()
        assert setting == default
        own.execute("CREATE TABLE gos.later AS SELECT 1 AS x")
        own.execute("CHECKPOINT")
        assert _row_groups(own, "gos.big") == 2
        (n,), = own.execute("SELECT count(*) FROM gos.big").fetchall()
    assert n == 122880 + 2 * 122880 * 3 // 10


def test_a_busy_database_is_checkpointed_at_the_close_instead(tmp_path: Path) -> None:
    """Another connection's write in progress: DuckDB refuses a checkpoint now; the block goes
    on and the close checkpoints once that write committed."""
    p = _pipeline(tmp_path)
    p.run(_rows(0, 10), table_name="notes")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as own:
        with checkpoints.deferred(p) as held:
            own.execute("BEGIN")
            own.execute("CREATE TABLE gos.side AS SELECT 1 AS x")
            held.start()
            assert held.thread is not None
            held.thread.join()
            assert held.errors and "CHECKPOINT" in str(held.errors[0]).upper()
            own.execute("COMMIT")
        (n,), = own.execute("SELECT count(*) FROM gos.notes").fetchall()
        (x,), = own.execute("SELECT x FROM gos.side").fetchall()
    assert (n, x) == (10, 1)
    assert _log(tmp_path) == 0


def test_other_destinations_hold_nothing(tmp_path: Path) -> None:
    p = dlt.pipeline("checkpoints_fs", pipelines_dir=str(tmp_path / "pipelines"),
                     destination=dlt.destinations.filesystem(bucket_url=tmp_path.as_uri()),
                     dataset_name="gos")
    with checkpoints.deferred(p) as held:
        held.start()
        assert (held.connection, held.thread) == (None, None)


def _vacuum_tasks(p: Any) -> int:
    with p.sql_client() as c:
        (value,), = c.execute_sql("SELECT current_setting('max_vacuum_tasks')")
    return int(value)


def test_loads_in_a_backfill_block_run_without_the_vacuum_and_later_ones_with_it(
        tmp_path: Path) -> None:
    """warehouse/duckdb.py `vacuum_off`: every database dlt opens in the block has DuckDB's
    vacuum off; after it, the setting is DuckDB's default again, and the rows are exact."""
    p = _pipeline(tmp_path)
    p.run(_rows(0, 10), table_name="notes")
    default = _vacuum_tasks(p)
    assert default > 0
    with warehouse_duckdb.vacuum_off(p) as off:
        assert off
        p.run(_rows(10, 5000), table_name="notes")
        assert _vacuum_tasks(p) == 0
        p.run(_rows(5010, 10), table_name="notes")
        assert _vacuum_tasks(p) == 0
    assert _vacuum_tasks(p) == default
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        (n, distinct), = con.execute("SELECT count(*), count(DISTINCT id) FROM gos.notes"
                                     ).fetchall()
    assert (n, distinct) == (5020, 5020)


def test_the_vacuum_stays_on_for_a_destination_without_our_credentials(tmp_path: Path) -> None:
    """A destination dlt resolves from a path (no credentials object of ours to set): the
    block changes nothing, and says so."""
    p = dlt.pipeline("plain", pipelines_dir=str(tmp_path / "pipelines"),
                     destination=dlt.destinations.duckdb(str(tmp_path / "plain.duckdb")),
                     dataset_name="gos")
    p.run(_rows(0, 10), table_name="notes")
    with warehouse_duckdb.vacuum_off(p) as off:
        p.run(_rows(10, 10), table_name="notes")
        assert not off and _vacuum_tasks(p) > 0
