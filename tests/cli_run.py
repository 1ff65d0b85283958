"""`growthos-sync` as a user or a scheduler runs it: the installed command, in a separate
process started from a folder that is not the project, configured by a project folder's
`.dlt/` (`--config-dir`) against a local server of the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hangs import run_to_end
from warehouse import Warehouse

from growthos_sim import DEFAULT_KEY, SimServer

BIN = Path(sys.executable).parent / "growthos-sync"
DB = "warehouse.duckdb"


class Project:
    """A project folder with `.dlt/config.toml` and `.dlt/secrets.toml` for `sim`, a DuckDB
    file named relative to it, and a separate folder the command is started from."""

    def __init__(self, tmp: Path, sim: SimServer, **settings: Any) -> None:
        self.tmp, self.sim = tmp, sim
        self.root = tmp / "project"
        self.config_dir = self.root / ".dlt"
        self.config_dir.mkdir(parents=True)
        self.elsewhere = tmp / "elsewhere"
        self.elsewhere.mkdir()
        self.data_dir = tmp / "dlt"
        info = sim.info()
        values: dict[str, Any] = {
            "base_url": sim.base_url, "waitlist_ids": info["waitlist_ids"],
            "funnel_ids": info["funnel_ids"], "cohort_ids": info["cohort_ids"],
            "page_size": 50, "events_window_days": 120, **settings}
        lines = ["[runtime]", "dlthub_telemetry = false", "", "[sources.growthos]"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        lines += ["", "[destination.duckdb]", f'credentials = "{DB}"', ""]
        (self.config_dir / "config.toml").write_text("\n".join(lines))
        (self.config_dir / "secrets.toml").write_text(
            f'[sources.growthos]\napi_key = "{DEFAULT_KEY}"\n')
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SOURCES__", "DESTINATION__", "RUNTIME__", "DLT_"))}
        self.env["DLT_DATA_DIR"] = str(self.data_dir)

    @property
    def db(self) -> Path:
        return self.root / DB

    def run(self, *args: str, config: bool = True, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`growthos-sync ARGS --config-dir <project>/.dlt`, started in another folder."""
        cmd = [str(BIN), *args] + (["--config-dir", str(self.config_dir)] if config else [])
        env = {**self.env, **(env or {})}
        return run_to_end(cmd, cwd=self.elsewhere, env=env, timeout=timeout)

    def ok(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        proc = self.run(*args, **kw)
        assert proc.returncode == 0, f"growthos-sync {' '.join(args)} -> {proc.returncode}:\n" \
                                     f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    def warehouse(self, dataset: str = "growthos") -> Warehouse:
        return WarehouseFile(self.db, self.sim, dataset)


class WarehouseFile(Warehouse):
    """The tests' Warehouse view of a DuckDB file some other process loaded."""

    def __init__(self, db: Path, sim: SimServer, dataset: str) -> None:
        self.sim, self.dataset, self.db, self.kind = sim, dataset, str(db), "duckdb"
        self.postgres_url, self.table_format = None, None
        self.lake = db.parent / "lake"
