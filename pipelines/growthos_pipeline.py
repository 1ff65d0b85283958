"""Sync GrowthOS into a warehouse: the same as the `growthos-sync` command.

    python pipelines/growthos_pipeline.py            # = growthos-sync sync
    python pipelines/growthos_pipeline.py --demo     # = growthos-sync demo (growthos_demo.duckdb)
    python pipelines/growthos_pipeline.py status     # any growthos-sync subcommand

Kept for schedulers set up before the command existed; see `growthos-sync --help`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from growthos_source.cli import entry

if __name__ == "__main__":
    entry()
