"""`--config-dir DIR`: read `config.toml`/`secrets.toml` from DIR wherever the command runs.

dlt looks for its settings in `./.dlt` (the working directory) and then in the user's global
folder (`~/.dlt`, or `/var/dlt` as root). A cron job starts in the home directory, so the
project's settings are not found unless it `cd`s first; `--config-dir` swaps dlt's run context
for one whose settings folder is DIR. Relative paths in those settings (a DuckDB file name)
resolve against DIR's parent, the project folder, not against wherever cron started.
"""

from __future__ import annotations

import os
from pathlib import Path

from dlt.common.configuration.container import Container
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext
from dlt.common.runtime.run_context import RunContext


class ConfigDirContext(RunContext):
    """dlt's default run context with the settings folder (and the folder relative paths
    resolve against) moved."""

    def __init__(self, settings: Path) -> None:
        super().__init__(str(settings.parent))
        self._settings = str(settings)

    @property
    def settings_dir(self) -> str:
        return self._settings

    @property
    def local_dir(self) -> str:
        return os.environ.get("DLT_LOCAL_DIR", str(Path(self._settings).parent))


def use_config_dir(config_dir: str | None) -> Path | None:
    """Point dlt at `config_dir` (None: dlt's default, `./.dlt` then the user's folder).

    Returns the folder used, or None for dlt's default. Raises SystemExit with one line if the
    folder does not exist."""
    if config_dir is None:
        return None
    path = Path(config_dir).expanduser().resolve()
    if not path.is_dir():
        raise SystemExit(f"error: --config-dir {config_dir}: no such folder (it should hold "
                         "config.toml and secrets.toml, like the project's .dlt/)")
    Container()[PluggableRunContext].reload(ConfigDirContext(path))
    return path
