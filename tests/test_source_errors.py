"""Bad configuration ends in one clear line and a non-zero exit, and touches nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from warehouse import Warehouse

from growthos_source.cli_errors import one_line
from growthos_source.isolation import TablesFailedError

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "pipelines" / "growthos_pipeline.py"


def run_script(tmp: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    full.update({"DLT_DATA_DIR": str(tmp / "dlt"), "RUNTIME__DLTHUB_TELEMETRY": "false",
                 "DESTINATION__DUCKDB__CREDENTIALS": str(tmp / "wh.duckdb")})
    full.update(env)
    return subprocess.run([sys.executable, str(SCRIPT), "--progress", "none", *args],
                          check=False, cwd=tmp, env=full, capture_output=True, text=True,
                          timeout=300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_missing_key(tmp_path: Path) -> None:
    r = run_script(tmp_path, {"SOURCES__GROWTHOS__BASE_URL": "http://127.0.0.1:9/v1"})
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error: no GrowthOS API key configured")


def test_wrong_key_fails_with_the_fix_and_never_echoes_the_key(make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=20, events=50)
    bad = "gos_sk_wrong_key_1234567890"
    r = run_script(tmp_path, {"SOURCES__GROWTHOS__BASE_URL": sim.base_url,
                              "SOURCES__GROWTHOS__API_KEY": bad}, "--resources", "contacts")
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert "api key was rejected" in last.lower() and "SOURCES__GROWTHOS__API_KEY" in last
    assert bad not in r.stdout + r.stderr


def test_unreachable_host(tmp_path: Path) -> None:
    r = run_script(tmp_path, {"SOURCES__GROWTHOS__BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
                              "SOURCES__GROWTHOS__API_KEY": "gos_sk_x",
                              "SOURCES__GROWTHOS__MAX_ATTEMPTS": "2"}, "--resources", "surveys")
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert "cannot reach" in last and "base_url" in last


@pytest.mark.parametrize("url, words", [
    ("not a url", "base_url"),
    ("http://api.growthos.io/v1", "https"),
])
def test_bad_base_url(tmp_path: Path, url: str, words: str) -> None:
    r = run_script(tmp_path, {"SOURCES__GROWTHOS__BASE_URL": url,
                              "SOURCES__GROWTHOS__API_KEY": "gos_sk_x"})
    assert r.returncode == 1
    assert words in r.stderr.strip().splitlines()[-1]


def test_missing_scope_fails_by_default_and_names_scope_and_table(make_sim,
                                                                  tmp_path: Path) -> None:
    sim = make_sim(contacts=30, events=100, keys={"gos_sk_ro": ["contacts:read"],
                                                  "gos_sk_test_local": ["*"]})
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts",), key="gos_sk_ro")
    events_state = wh.pipeline.state["sources"]["growthos"].get("marks", {}).get("events")
    with pytest.raises(TablesFailedError) as err:
        wh.sync(resources=("contacts", "events"), key="gos_sk_ro")
    line = one_line(err.value)
    assert "events:read (events)" in line and "--resources" in line and "on_missing_scope" in line
    # The other table loaded and committed; the failed one kept its marks for the next run.
    assert err.value.result.load_info is not None and "events" not in wh.tables()
    marks = wh.pipeline.state["sources"]["growthos"].get("marks", {})
    assert marks.get("events") == events_state


def test_missing_scope_can_be_skipped(make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=30, events=100, keys={"gos_sk_ro": ["contacts:read"]})
    wh = Warehouse(tmp_path, sim)
    result = wh.sync(resources=("contacts", "events"), key="gos_sk_ro",
                     on_missing_scope="skip")
    assert result.rows["contacts"] > 0 and "events" not in result.rows


def test_revoked_key_fails_after_the_grace_period(make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=20, events=50, keys={"gos_sk_old": ["*"], "gos_sk_admin": ["*"]})
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts",), key="gos_sk_old")
    import httpx

    admin = {"Authorization": "Bearer gos_sk_admin"}
    keys = httpx.get(f"{sim.base_url}/settings/keys", headers=admin).json()["data"]
    old = next(k for k in keys if k["key_hint"].endswith("_old"))  # hints show 4 chars
    assert httpx.delete(f"{sim.base_url}/settings/keys/{old['id']}",
                        headers=admin).status_code == 204
    wh.sync(resources=("contacts",), key="gos_sk_old")  # revoked keys work for 24 h
    httpx.post(f"{sim.url}/_sim/mutate", json={"advance": "25h", "activity": False})
    with pytest.raises(PipelineStepFailed) as err:
        wh.sync(resources=("contacts",), key="gos_sk_old")
    line = one_line(err.value)
    assert "rejected" in line and "SOURCES__GROWTHOS__API_KEY" in line and "gos_sk_old" not in line
