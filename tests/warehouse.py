"""Helpers for connector tests: run real pipelines into real DuckDB files and compare the
warehouse with the local server's truth."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import dlt
import duckdb
from conftest import truth

from growthos_sim import DEFAULT_KEY, SimServer
from growthos_source import growthos, sync
from growthos_source.endpoints import ENDPOINTS, Endpoint
from growthos_source.sync import SyncResult

# Columns compared with /_sim/truth besides each table's key, cursor and parent key, which come
# from ENDPOINTS (the connector's one table contract).
COMPARED: dict[str, tuple[str, ...]] = {
    "contacts": ("email",), "segments": ("name",), "segment_memberships": ("added_at",),
    "referral_links": ("program_id", "conversions"),
    "referral_conversions": ("created_at", "link_code"),
    "referral_leaderboard": ("rank", "referrals"), "campaigns": ("status",),
    "campaign_stats": ("updated_at",), "survey_stats": ("total_responses", "updated_at"),
    "waitlists": ("total_entries",), "waitlist_entries": ("joined_at", "status"),
    "daily_event_counts": ("count",), "funnels": ("updated_at",), "cohorts": ("updated_at",),
    "project_settings": ("updated_at",), "api_keys": ("created_at",),
}


def _compared(ep: Endpoint) -> tuple[str, ...]:
    cols = (ep.cursor, ep.parent_key, *COMPARED.get(ep.table, ()))
    return tuple(dict.fromkeys(c for c in cols if c and c not in ep.primary_key))


# table -> (key columns, compared columns) of the equality checks against /_sim/truth: every
# table of ENDPOINTS except hidden walks and snapshots stamped with the run's time.
CHECKS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ep.table: (ep.primary_key, _compared(ep)) for ep in ENDPOINTS
    if not ep.table.startswith("_") and ep.stamp is None}
SOFT_DELETE_TABLES = {"contacts", "contact_profiles", "segments", "webhook_endpoints",
                      "webhook_deliveries"}


def norm(value: Any) -> Any:
    """Comparable form: timestamps to aware UTC datetimes at ms precision, dates to ISO."""
    if isinstance(value, dt.datetime):
        v = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        v = v.astimezone(dt.timezone.utc)
        return v.replace(microsecond=v.microsecond // 1000 * 1000)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T":
        return norm(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


DESTINATIONS = ("duckdb", "postgres", "delta")


class Warehouse:
    """A pipeline into a temporary warehouse: a DuckDB file (default), a PostgreSQL database
    (`postgres_url`, from the `postgres_url` fixture) or Delta tables in a local `file://`
    bucket. `query()` reads it with that warehouse's own client ({ds}: the dataset), not through
    the connector, so the checks do not trust the code they check."""

    def __init__(self, tmp: Path, sim: SimServer, name: str = "growthos_test",
                 dataset: str = "gos", destination: str = "duckdb",
                 postgres_url: str | None = None) -> None:
        self.sim, self.dataset, self.kind = sim, dataset, destination
        self.db = str(tmp / f"{name}.duckdb")
        self.postgres_url = postgres_url
        self.lake = tmp / "lake"
        self.table_format: str | None = None
        dest: Any
        if destination == "duckdb":
            dest = dlt.destinations.duckdb(self.db)
        elif destination == "postgres":
            assert postgres_url, "a postgres Warehouse needs postgres_url"
            dest = dlt.destinations.postgres(postgres_url)
        elif destination == "delta":
            dest = dlt.destinations.filesystem(self.lake.as_uri())
            self.table_format = "delta"
        else:
            raise ValueError(destination)
        self.pipeline = dlt.pipeline(pipeline_name=name, pipelines_dir=str(tmp / "pipelines"),
                                     destination=dest, dataset_name=dataset)

    def source(self, key: str = DEFAULT_KEY, **kw: Any) -> Any:
        info = self.sim.info()
        args: dict[str, Any] = {"api_key": key, "base_url": self.sim.base_url,
                                "waitlist_ids": info["waitlist_ids"],
                                "funnel_ids": info["funnel_ids"],
                                "cohort_ids": info["cohort_ids"], "max_attempts": 4}
        args.update(kw)
        return growthos(**args)

    def sync(self, resources: tuple[str, ...] = (), **kw: Any) -> SyncResult:
        src = self.source(**kw)
        if resources:
            src = src.with_resources(*resources)
        return sync(self.pipeline, src, table_format=self.table_format)  # type: ignore[arg-type]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        sql = sql.replace("{ds}", self.dataset)
        if self.kind == "postgres":
            import psycopg2

            con = psycopg2.connect(self.postgres_url)
            try:
                with con.cursor() as cur:
                    cur.execute(sql)
                    return [tuple(r) for r in cur.fetchall()]
            finally:
                con.close()
        if self.kind == "delta":
            with self._lake(sql) as con:
                return con.execute(sql).fetchall()
        with duckdb.connect(self.db, read_only=True) as con:
            return con.execute(sql).fetchall()

    def _lake(self, sql: str | None = None) -> Any:
        """An in-memory DuckDB with a view per Delta table of the dataset, read by deltalake
        (DuckDB's own delta extension is downloaded on first use: no internet here). With `sql`,
        only the tables it names as `<dataset>.<table>`, since opening every Delta table for
        every query is what made the exactness checks slow; all of them for information_schema."""
        from deltalake import DeltaTable

        wanted = None if sql is None or "information_schema" in sql else set(
            re.findall(rf'"?\b{re.escape(self.dataset)}"?\."?(\w+)', sql))
        con = duckdb.connect()
        con.execute(f'CREATE SCHEMA "{self.dataset}"')
        root = self.lake / self.dataset
        for d in sorted(root.iterdir()) if root.is_dir() else ():
            if (wanted is None or d.name in wanted) and (d / "_delta_log").is_dir():
                con.register(f"_t_{d.name}", DeltaTable(str(d)).to_pyarrow_dataset())
                # LIMIT: DuckDB must not push filters into a dataset whose files disagree on
                # a text column's arrow type (string / dictionary / string_view)
                con.execute(f'CREATE VIEW "{self.dataset}"."{d.name}" AS '
                            f"SELECT * FROM _t_{d.name} LIMIT {2**63 - 1}")
        return con

    def tables(self) -> set[str]:
        if self.kind == "delta":
            root = self.lake / self.dataset
            return {d.name for d in root.iterdir() if (d / "_delta_log").is_dir()} \
                if root.is_dir() else set()
        rows = self.query("SELECT table_name FROM information_schema.tables "
                          "WHERE table_schema = '{ds}'")
        return {r[0] for r in rows}

    def columns(self, table: str) -> set[str]:
        if self.kind == "delta":
            sql = f'DESCRIBE "{self.dataset}"."{table}"'
            with self._lake(sql) as con:
                return {r[0] for r in con.execute(sql).fetchall()}
        return {r[0] for r in self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = '{ds}' "
            f"AND table_name = '{table}'")}

    def rows(self, table: str, cols: tuple[str, ...], live_only: bool = True) -> list[tuple[Any, ...]]:
        where = " WHERE _deleted_at IS NULL" if live_only and table in SOFT_DELETE_TABLES else ""
        sql = f"SELECT {', '.join(cols)} FROM {{ds}}.{table}{where}"
        return [tuple(norm(v) for v in r) for r in self.query(sql)]

    def duplicate_rows(self) -> dict[str, int]:
        """Rows that are in a table (nested ones included) more than once: same `_dlt_id`, or
        for tables without it the same `id` (append tables hold each record once too)."""
        out: dict[str, int] = {}
        for table in sorted(self.tables()):
            if table.startswith("_dlt"):
                continue
            cols = self.columns(table)
            key = "_dlt_id" if "_dlt_id" in cols else "id" if "id" in cols else None
            if key is None:
                continue
            n, distinct = self.query(f"SELECT COUNT(*), COUNT(DISTINCT {key}) "
                                     f"FROM {{ds}}.{table}")[0]
            if n != distinct:
                out[table] = n - distinct
        return out


def assert_equals_truth(wh: Warehouse, table: str) -> int:
    """The warehouse table equals /_sim/truth/{table}: same keys, same compared values, no
    duplicates. Returns the row count."""
    keys, cols = CHECKS[table]
    got = wh.rows(table, keys + cols)
    want = [tuple(norm(r.get(c)) for c in keys + cols) for r in truth(wh.sim, table)]
    got_keys = [g[: len(keys)] for g in got]
    assert len(got_keys) == len(set(got_keys)), f"{table}: duplicate keys in the warehouse"
    missing = set(want) - set(got)
    extra = set(got) - set(want)
    assert not missing and not extra, (
        f"{table}: {len(missing)} rows missing or different (e.g. {sorted(missing)[:2]}), "
        f"{len(extra)} unexpected (e.g. {sorted(extra)[:2]})")
    return len(got)
