"""Shared fixtures: local GrowthOS servers on free loopback ports (real HTTP)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from postgres_server import PostgresServer

from growthos_sim import DEFAULT_KEY, SimServer

# dlt must never phone home from tests (no internet here), whatever the user's config says.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

SMALL = {"seed": 7, "contacts": 300, "events": 3000}


@pytest.fixture(scope="session")
def sim() -> Iterator[SimServer]:
    """One shared, read-only server. Tests that change data use `make_sim` instead."""
    with SimServer(**SMALL) as s:
        yield s


@pytest.fixture
def make_sim() -> Iterator[Callable[..., SimServer]]:
    """Start private servers (stopped at teardown): `make_sim(contacts=50, plan="free")`."""
    started: list[SimServer] = []

    def factory(**kw: Any) -> SimServer:
        s = SimServer(**{**SMALL, **kw}).start()
        started.append(s)
        return s

    yield factory
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (see postgres_server.py)."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's PostgreSQL server (libpq URL)."""
    return postgres_server.create_database()


@pytest.fixture
def api() -> Callable[[SimServer], httpx.Client]:
    """An authenticated httpx client for a server's /v1 base URL."""
    clients: list[httpx.Client] = []

    def factory(s: SimServer, key: str = DEFAULT_KEY) -> httpx.Client:
        c = httpx.Client(base_url=s.base_url, headers={"Authorization": f"Bearer {key}"},
                         timeout=30)
        clients.append(c)
        return c

    yield factory  # type: ignore[misc]
    for c in clients:
        c.close()


def control(s: SimServer, method: str, path: str, **kw: Any) -> httpx.Response:
    """Call the server's /_sim/ control plane."""
    return httpx.request(method, f"{s.url}/_sim/{path}", timeout=120, **kw)


def truth(s: SimServer, table: str, include_deleted: bool = False) -> list[dict[str, Any]]:
    """Rows of /_sim/truth/{table}."""
    import json

    r = control(s, "GET", f"truth/{table}", params={"include_deleted": "1"} if include_deleted
                else None)
    r.raise_for_status()
    return [json.loads(line) for line in r.text.splitlines() if line]
