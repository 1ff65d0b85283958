"""The server as its own process keeps its data out of the garbage collector's passes
(SimServer(freeze_heap=True), what `python -m growthos_sim` starts), and still frees what a
reset replaced."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from conftest import control

from growthos_sim import SimServer


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The test process's heap as it was: nothing else of the suite stays frozen."""
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()


def test_the_data_is_frozen_after_each_write_and_a_replaced_world_is_freed(
        make_sim: Callable[..., SimServer], unfrozen: None) -> None:
    sim = make_sim(freeze_heap=True)
    assert gc.get_freeze_count() > 0
    old = weakref.ref(sim.world)
    assert control(sim, "POST", "reset", json={"events": 300}).status_code == 200
    assert old() is None  # the replaced world was collected, not kept frozen
    assert gc.get_freeze_count() > 0
    assert control(sim, "POST", "mutate", json={"advance": "1d"}).status_code == 200
    assert gc.get_freeze_count() > 0
    with httpx.Client(base_url=sim.base_url, headers={
            "Authorization": "Bearer gos_sk_test_local"}, timeout=30) as c:
        page: dict[str, Any] = c.get("/analytics/events", params={"limit": 5}).json()
    assert len(page["data"]) == 5


def test_an_in_process_server_leaves_the_collector_alone(
        make_sim: Callable[..., SimServer], unfrozen: None) -> None:
    sim = make_sim()
    assert control(sim, "POST", "reset", json={"events": 300}).status_code == 200
    assert gc.get_freeze_count() == 0


def test_the_command_line_server_freezes_its_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    made: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def fake(**kw: Any) -> Any:
        made.update(kw)
        raise Stop

    monkeypatch.setattr("growthos_sim.app.SimServer", fake)
    from growthos_sim import cli

    with pytest.raises(Stop):
        cli.main(["--port", "0", "--contacts", "5", "--events", "5"])
    assert made["freeze_heap"] is True and made["events"] == 5
