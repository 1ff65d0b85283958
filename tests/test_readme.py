"""The README's "From Python" example runs verbatim, from an empty folder, and leaves no
pending load package."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {marker}:[^>]*-->\s*```python\n(.*?)```", text, re.DOTALL)
    assert m, f"no python block after <!-- {marker} --> in README.md"
    return m.group(1)


def test_from_python_example_runs_verbatim(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOURCES__", "DESTINATION__", "DLT_"))}
    env["DLT_DATA_DIR"] = str(tmp_path / "dlt")
    proc = subprocess.run([sys.executable, "-c", _block("from-python")], cwd=tmp_path, env=env,
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.fullmatch(r"\d+ contacts, 1000 events\n", proc.stdout), proc.stdout
    assert (tmp_path / "growthos_example.duckdb").is_file()
    work = tmp_path / "dlt" / "pipelines" / "growthos_example"
    pending = [p for d in ("normalize/extracted", "load/normalized", "load/new")
               if (work / d).is_dir() for p in (work / d).iterdir()]
    assert pending == []
