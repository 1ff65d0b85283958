"""Schedules that work: the crontab line of deploy/crontab as cron runs it (another folder, a
bare environment), and the GitHub Actions path: a runner that starts with no pipeline folder
restores the state from the warehouse and runs incrementally."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psycopg2
from cli_run import BIN, Project
from conftest import control, truth
from warehouse import assert_equals_truth

ROOT = Path(__file__).resolve().parent.parent
SIZE = {"contacts": 50, "events": 300}


def _crontab() -> tuple[dict[str, str], str]:
    """deploy/crontab: its variable lines and the command of its one schedule line."""
    env, command = {}, None
    for line in (ROOT / "deploy" / "crontab").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        head = line.split()[0]
        if "=" in head and not head[0].isdigit() and head[0] != "*":
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip()
        else:
            command = line.split(None, 5)[5]
    assert command is not None
    return env, command


def test_the_crontab_line_runs_from_another_folder(make_sim, tmp_path: Path) -> None:
    sim = make_sim(**SIZE)
    p = Project(tmp_path, sim)
    cron_env, command = _crontab()
    # The line as the user installs it, with the project folder of this test.
    command = command.replace("/srv/growthos/.venv/bin/growthos-sync", str(BIN))
    command = command.replace("/srv/growthos", str(p.root))
    env = {k: v.replace("/srv/growthos", str(p.root)) for k, v in cron_env.items()}
    home = tmp_path / "home"
    home.mkdir()
    # What cron gives a job: a bare PATH, HOME as the working folder, the crontab's variables.
    env.update({"PATH": "/usr/bin:/bin", "HOME": str(home), "SHELL": "/bin/sh"})
    proc = subprocess.run(["/bin/sh", "-c", command], cwd=home, env=env, check=False,
                          capture_output=True, text=True, timeout=600)
    out = (p.root / "growthos-sync.out").read_text()
    assert proc.returncode == 0, out[-3000:]
    assert out.startswith("Loaded ") and "error" not in out
    assert (p.root / "state" / "pipelines" / "growthos" / "state.json").is_file()
    assert_equals_truth(p.warehouse(), "contacts")
    assert_equals_truth(p.warehouse(), "events")


def test_an_empty_runner_restores_state_from_the_warehouse(make_sim, tmp_path: Path,
                                                           postgres_url: str) -> None:
    sim = make_sim(**SIZE)
    p = Project(tmp_path, sim)
    env = {"DESTINATION__POSTGRES__CREDENTIALS": postgres_url}
    args = ("--destination", "postgres", "--resources", "contacts,events")
    p.ok(*args, env=env)
    shutil.rmtree(p.data_dir)  # the next runner starts empty
    did = control(sim, "POST", "mutate", json={"advance": "1d", "events": {"create": 15},
                                               "contacts": {"update": 4}}).json()
    updated = set(did["contacts"]["update"])
    p.ok(*args, env=env)
    with psycopg2.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute("SELECT table_name, rows_loaded, mark_before FROM growthos._growthos_runs "
                    "ORDER BY started_at DESC, table_name LIMIT 2")
        last = {t: (n, m) for t, n, m in cur.fetchall()}
        cur.execute("SELECT id, COUNT(*) FROM growthos.events GROUP BY id")
        events = dict(cur.fetchall())
        cur.execute("SELECT id, updated_at FROM growthos.contacts WHERE _deleted_at IS NULL")
        contacts = {i: u for i, u in cur.fetchall()}
    # Incremental, not a full reload: the marks came back from the warehouse.
    assert last["events"][0] == 15 and last["events"][1] is not None
    assert last["contacts"][0] == len(updated) > 0 and last["contacts"][1] is not None
    assert set(events) == {e["id"] for e in truth(sim, "events")}
    assert set(events.values()) == {1}
    assert set(contacts) == {c["id"] for c in truth(sim, "contacts")}
