"""The README's commands and examples: the "From Python" example runs verbatim, from an empty
folder, and leaves no pending load package; the SQL views' examples give the results shown on
the demo data (README and docs/sql-models.md); a second folder's demo is refused and the
README's fix works."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import duckdb
import pytest
from hangs import run_to_end

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "growthos-sync"
# The views' names are fixed by issue 16 (users' queries use them).
VIEWS = ("contacts_current", "survey_nps", "survey_nps_monthly", "campaign_performance",
         "referral_funnel", "daily_events", "waitlist_funnel")


def _block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {marker}:[^>]*-->\s*```python\n(.*?)```", text, re.DOTALL)
    assert m, f"no python block after <!-- {marker} --> in README.md"
    return m.group(1)


def test_from_python_example_runs_verbatim(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOURCES__", "DESTINATION__", "DLT_"))}
    env["DLT_DATA_DIR"] = str(tmp_path / "dlt")
    proc = run_to_end([sys.executable, "-c", _block("from-python")], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.fullmatch(r"\d+ contacts, 1000 events\n", proc.stdout), proc.stdout
    assert (tmp_path / "growthos_example.duckdb").is_file()
    work = tmp_path / "dlt" / "pipelines" / "growthos_example"
    pending = [p for d in ("normalize/extracted", "load/normalized", "load/new")
               if (work / d).is_dir() for p in (work / d).iterdir()]
    assert pending == []


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOURCES__", "DESTINATION__", "DLT_"))}
    env["DLT_DATA_DIR"] = str(tmp_path / "dlt")
    return env


def _readme_view_examples() -> list[tuple[str, list[str]]]:
    """The README's SQL views block: (query, its `-->` result rows) in order."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- sql-views:[^>]*-->\s*```sql\n(.*?)```", text, re.DOTALL)
    assert m, "no sql block after <!-- sql-views --> in README.md"
    examples: list[tuple[str, list[str]]] = []
    query: list[str] = []
    for line in m.group(1).splitlines():
        if line.startswith("-->"):
            examples[-1][1].append(line[3:].strip())
        elif line.strip() and not line.startswith("-- "):
            query.append(line)
            if line.rstrip().endswith(";"):
                examples.append(("\n".join(query), []))
                query = []
    assert not query, f"unterminated query in the README: {query}"
    return examples


def _docs_view_examples() -> list[tuple[str, list[str], list[list[str]]]]:
    """docs/sql-models.md: each ```sql block and the result table right after it."""
    text = (ROOT / "docs" / "sql-models.md").read_text()
    out = []
    for q, result in re.findall(r"```sql\n(.*?)```\n```\n(.*?)```", text, re.DOTALL):
        lines = result.strip().splitlines()
        out.append((q, [c.strip() for c in lines[0].split("|")],
                    [[c.strip() for c in r.split("|")] for r in lines[1:]]))
    return out


def _cell(value: object, null: str) -> str:
    return null if value is None else str(value)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """`growthos-sync demo --models` run in a folder of its own: (the folder, its env)."""
    tmp = tmp_path_factory.mktemp("demo")
    env = _clean_env(tmp)
    first = tmp / "first"
    first.mkdir()
    proc = run_to_end([str(BIN), "demo", "--models"], cwd=first, env=env, timeout=400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return first, env


def test_sql_view_examples_give_the_results_shown_on_the_demo(
        demo: tuple[Path, dict[str, str]]) -> None:
    """After `growthos-sync demo --models`, every example query of the README's SQL views and
    of docs/sql-models.md gives exactly the rows printed under it."""
    first, _ = demo
    examples = _readme_view_examples()
    shown = " ".join(q for q, _ in examples)
    for view in VIEWS:
        assert f"growthos.{view}" in shown, f"the README shows no example of {view}"
    docs = _docs_view_examples()
    assert len(docs) == len(VIEWS), "docs/sql-models.md: one example per view"
    with duckdb.connect(str(first / "growthos_demo.duckdb"), read_only=True) as con:
        for query, want in examples:
            assert want, f"no result shown for {query}"
            got = [" | ".join(_cell(v, "NULL") for v in r) for r in con.execute(query).fetchall()]
            assert got == want, query
        for query, header, rows in docs:
            cur = con.execute(query)
            assert [d[0] for d in cur.description] == header, query
            assert [[_cell(v, "None") for v in r] for r in cur.fetchall()] == rows, query


def test_a_second_folders_demo_is_refused_and_the_readme_fix_works(
        demo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """The demo's pipeline belongs to the first folder: a second folder with the same dlt data
    folder is refused with one line and loads nothing; the README's command (its own state)
    runs the demo there."""
    first, env = demo
    second = tmp_path / "second"
    second.mkdir()
    small = ["--contacts", "80", "--events", "500"]
    (second / ".venv").symlink_to(Path(sys.executable).parent.parent)
    refused = run_to_end([str(BIN), "demo", *small], cwd=second, env=env)
    assert refused.returncode == 1
    errors = [ln for ln in (refused.stdout + refused.stderr).splitlines()
              if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: pipeline growthos_demo loads into duckdb at {first / 'growthos_demo.duckdb'}")
    assert not (second / "growthos_demo.duckdb").exists()
    text = " ".join((ROOT / "README.md").read_text().split())
    m = re.search(r"`(DLT_DATA_DIR=\S+ \.venv/bin/growthos-sync demo)`", text)
    assert m, "the README's command for a second folder's demo"
    fixed = run_to_end(["bash", "-c", f"{m.group(1)} {' '.join(small)}"], cwd=second,
                       env=env)
    assert fixed.returncode == 0, (fixed.stdout + fixed.stderr)[-3000:]
    assert (second / "growthos_demo.duckdb").is_file()
    # The refusal's own fix, another pipeline name, works for the demo too.
    third = tmp_path / "third"
    third.mkdir()
    (third / ".venv").symlink_to(Path(sys.executable).parent.parent)
    name = re.search(r"--pipeline-name (\w+)", errors[0])
    assert name, errors[0]
    other = run_to_end([str(BIN), "demo", *small, "--pipeline-name", name.group(1)],
                       cwd=third, env=env)
    assert other.returncode == 0, (other.stdout + other.stderr)[-3000:]
    assert (third / "growthos_demo.duckdb").is_file()
