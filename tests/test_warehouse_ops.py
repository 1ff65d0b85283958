"""The warehouse operations themselves (warehouse/ops.py, backends.py, deletes.py) on DuckDB, a
real PostgreSQL server and Delta tables: small tables loaded by real dlt pipelines, checked
through each warehouse's own client (tests/warehouse.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import dlt
import pytest
from warehouse import DESTINATIONS, Warehouse

from growthos_source.warehouse import backends, deletes, ops

STAMPS = {  # id -> timestamp: three UTC days, with rows on both edges of a day
    "e1": "2026-03-01T00:00:00.000Z", "e2": "2026-03-01T12:30:00.000Z",
    "e3": "2026-03-01T23:59:59.999Z", "e4": "2026-03-02T00:00:00.000Z",
    "e5": "2026-03-02T18:00:00.000Z", "e6": "2026-03-03T01:00:00.000Z",
    "e7": "2026-03-03T02:00:00.000Z", "e8": "2026-03-03T03:00:00.000Z",
    "e9": "2026-03-03T23:59:59.000Z"}


class Lake(Warehouse):
    """A Warehouse without a server behind it: the tables are loaded here directly."""

    def __init__(self, tmp: Path, kind: str, request: pytest.FixtureRequest) -> None:
        url = request.getfixturevalue("postgres_url") if kind == "postgres" else None
        super().__init__(tmp, None, name=f"ops_{kind}", destination=kind,  # type: ignore[arg-type]
                         postgres_url=url)

    def load(self, data: Any, **kw: Any) -> None:
        if self.table_format:
            kw["table_format"] = self.table_format
        self.pipeline.run(data, loader_file_format="parquet", **kw)


def stamps(lake: Lake) -> dict[str, Any]:
    return {r[0]: r[1] for r in lake.query("SELECT id, timestamp FROM {ds}.events")}


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_day_counts_and_delete_days(kind: str, tmp_path: Path,
                                    request: pytest.FixtureRequest) -> None:
    lake = Lake(tmp_path, kind, request)
    p = lake.pipeline
    lake.load([{"id": i, "timestamp": t} for i, t in STAMPS.items()], table_name="events",
              columns={"timestamp": {"data_type": "timestamp"}})
    lake.load([{"id": "x"}], table_name="other")
    assert ops.day_counts(p, "events", "timestamp") == {
        "2026-03-01": 3, "2026-03-02": 2, "2026-03-03": 4}
    assert ops.day_counts(p, "never_loaded", "timestamp") == {}
    # a day with no rows and a repeated day change nothing; str and date both name a day
    removed = ops.delete_days(p, "events", "timestamp",
                              ["2026-03-02", dt.date(2026, 3, 3), "2026-03-09", "2026-03-02"])
    assert removed == 6
    assert ops.day_counts(p, "events", "timestamp") == {"2026-03-01": 3}
    assert set(stamps(lake)) == {"e1", "e2", "e3"}
    assert ops.delete_days(p, "events", "timestamp", []) == 0
    assert ops.delete_days(p, "never_loaded", "timestamp", ["2026-03-01"]) == 0
    assert lake.query("SELECT COUNT(*) FROM {ds}.other")[0][0] == 1


def test_delta_keep_one_copy_is_one_commit(tmp_path: Path,
                                           request: pytest.FixtureRequest) -> None:
    """The replayed-rows cleanup on Delta replaces the copies with one row each in a single
    commit, so a kill at any point leaves either the copies (cleaned by the next run) or the
    clean table, never a table that lost the rows."""
    from deltalake import DeltaTable, write_deltalake

    lake = Lake(tmp_path, "delta", request)
    lake.load([{"id": f"r{i}", "v": i} for i in range(6)], table_name="things")
    path = str(lake.lake / lake.dataset / "things")
    table = DeltaTable(path)
    copies = table.to_pyarrow_table().filter(
        __import__("pyarrow.compute").compute.field("id").isin(["r1", "r4"]))
    write_deltalake(table, copies, mode="append")  # what a replayed load job leaves
    before = DeltaTable(path).version()
    ids = [r[0] for r in lake.query("SELECT _dlt_id FROM {ds}.things WHERE id IN ('r1', 'r4') "
                                    "GROUP BY _dlt_id")]
    with ops.session(lake.pipeline) as b:
        b.keep_one_copy("things", "_dlt_id", ids)
    assert DeltaTable(path).version() == before + 1
    rows = lake.query("SELECT id, v FROM {ds}.things ORDER BY id")
    assert rows == [(f"r{i}", i) for i in range(6)]


def test_delta_remove_interrupted_between_commits_is_finished_by_the_next_apply(
        tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """`deletes="remove"` on Delta is two commits (nested rows, then the parents): a run stopped
    between them leaves parents without nested rows, and the next apply removes them."""
    lake = Lake(tmp_path, "delta", request)
    people = [{"id": f"c{i}", "updated_at": "2026-03-01T00:00:00.000Z", "_deleted_at": None,
               "tags": [f"t{i}", "all"]} for i in range(4)]
    lake.load(people, table_name="contacts", write_disposition="merge", primary_key="id",
              columns={"_deleted_at": {"data_type": "timestamp", "nullable": True}})
    log = deletes.deletion_rows(next(e for e in deletes.ENDPOINTS if e.table == "contacts"),
                                ["c1", "c2"], "2026-03-02T00:00:00.000Z", "remove")

    @dlt.resource(name=deletes.LOG_TABLE)
    def deletion_log() -> Any:
        yield dlt.mark.with_hints(log, deletes.log_hints())

    lake.load(deletion_log())

    real = backends.DeltaBackend.delete_in

    def stop_before_the_parents(self: Any, table: str, *a: Any, **kw: Any) -> None:
        if table == "contacts":
            raise KeyboardInterrupt("stopped between the two commits")
        real(self, table, *a, **kw)

    monkeypatch.setattr(backends.DeltaBackend, "delete_in", stop_before_the_parents)
    with pytest.raises(KeyboardInterrupt):
        deletes.apply(lake.pipeline)
    assert lake.query("SELECT COUNT(*) FROM {ds}.contacts")[0][0] == 4  # parents still there
    assert lake.query("SELECT COUNT(*) FROM {ds}.contacts__tags")[0][0] == 4  # 2 people left
    monkeypatch.setattr(backends.DeltaBackend, "delete_in", real)
    assert deletes.apply(lake.pipeline) == {"contacts": 2}
    assert sorted(r[0] for r in lake.query("SELECT id FROM {ds}.contacts")) == ["c0", "c3"]
    assert sorted(r[0] for r in lake.query("SELECT value FROM {ds}.contacts__tags")) == [
        "all", "all", "t0", "t3"]
    assert deletes.apply(lake.pipeline) == {}  # done: nothing left to change
