"""A real PostgreSQL server for the tests: started on 127.0.0.1 and a free port, in a temporary
data directory, stopped when the test session ends.

Uses an already running server when `GROWTHOS_TEST_POSTGRES` names one (a libpq URL such as
`postgresql://user:pass@127.0.0.1:5432/db`), else Debian's server binaries
(`/usr/lib/postgresql/<version>/bin`, installed by `.ci/run` when the machine lacks them).
`initdb` refuses to run as root, so as root the server runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ENV_URL = "GROWTHOS_TEST_POSTGRES"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("no PostgreSQL server binaries (initdb): install Debian's `postgresql` "
                       f"package (`.ci/run` does), or set {ENV_URL} to a server's URL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A throwaway cluster; `url(db)` gives a libpq URL, `create_database()` a fresh database."""

    user = "growthos"
    password = "growthos_test_pw"

    def __init__(self) -> None:
        self.port = 0
        self._dir: str | None = None
        self._external = os.environ.get(ENV_URL)
        self._run: Callable[..., subprocess.CompletedProcess[str]] = self._as_owner
        self._created = 0

    def _as_owner(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        kw: dict[str, object] = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        return subprocess.run(cmd, check=True, capture_output=True, text=True,
                              cwd="/", **kw)  # type: ignore[call-overload]

    def start(self) -> PostgresServer:
        if self._external:
            return self
        bin_dir = _bin_dir()
        self._dir = tempfile.mkdtemp(prefix="growthos_pg_")
        data = os.path.join(self._dir, "data")
        pwfile = os.path.join(self._dir, "pw")
        with open(pwfile, "w", encoding="utf-8") as f:
            f.write(self.password)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self._dir, pw.pw_uid, pw.pw_gid)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self._run(str(bin_dir / "initdb"), "-D", data, "-U", self.user, "--pwfile", pwfile,
                  "-A", "scram-sha-256", "-E", "UTF8", "--no-sync")
        self.port = _free_port()
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self._dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200")
        self._run(str(bin_dir / "pg_ctl"), "-D", data, "-o", opts, "-l",
                  os.path.join(self._dir, "log"), "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        if self._external or self._dir is None:
            return
        try:
            self._run(str(_bin_dir() / "pg_ctl"), "-D", os.path.join(self._dir, "data"),
                      "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def url(self, database: str = "postgres") -> str:
        if self._external:
            base = self._external.rsplit("/", 1)[0]
            return f"{base}/{database}"
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "gos") -> str:
        """A new empty database; returns its URL."""
        import psycopg2

        self._created += 1
        name = f"{prefix}_{os.getpid()}_{self._created}_{int(time.time() * 1000) % 10**8}"
        con = psycopg2.connect(self.url("postgres"))
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return self.url(name)
