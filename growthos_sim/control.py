"""The control plane under /_sim/ (loopback only, not part of the public API): reset, mutate,
faults, truth, stats and info for tests, demos and benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from . import quirks
from .faults import FaultConfig
from .mutate import Mutator
from .truth import tables, truth_jsonl

if TYPE_CHECKING:
    from .app import SimServer

JSON = "application/json"
Answer = tuple[int, bytes, str]


def _json(status: int, obj: Any) -> Answer:
    return status, orjson.dumps(obj), JSON


class Control:
    def __init__(self, sim: SimServer) -> None:
        self.sim = sim

    def _write(self, change: Callable[[], Any]) -> Answer:
        """Apply a change of the data under the world lock; cached derived views are stale
        afterwards, also after a change that failed half-way. The changed data is then out of
        the collector's passes again (SimServer.settle)."""
        world = self.sim.world
        try:
            with world.lock:
                try:
                    return _json(200, change())
                finally:
                    world.changed()
        finally:
            self.sim.settle()

    def handle(self, method: str, path: str, params: dict[str, str], raw: bytes) -> Answer:
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            return _json(400, {"error": "the body is not valid JSON"})
        if not isinstance(body, dict):
            return _json(400, {"error": "the body must be a JSON object"})
        sim = self.sim
        with sim.world.lock:
            sim.world.process_due()  # every view answers as of server time now
        try:
            if path == "reset" and method == "POST":
                sim.reset(**body)
                return _json(200, {"reset": True, **sim.info()})
            if path == "mutate" and method == "POST":
                return self._write(lambda: Mutator(sim.world).apply(body))
            if path == "quirks" and method == "POST":
                return self._write(lambda: quirks.apply(sim.world, body))
            if path == "faults" and method == "PUT":
                sim.faults.set(FaultConfig.from_json(body))
                return _json(200, sim.faults.as_dict())
            if path == "faults" and method == "GET":
                return _json(200, sim.faults.as_dict())
            if path == "stats" and method == "GET":
                return _json(200, sim.stats.snapshot())
            if path == "info" and method == "GET":
                return _json(200, sim.info())
            if path.startswith("truth/") and method == "GET":
                name = path[len("truth/"):]
                with sim.world.lock:
                    data = truth_jsonl(sim.world, name,
                                       params.get("include_deleted") in ("1", "true"))
                if data is None:
                    return _json(404, {"error": f"unknown table {name!r}",
                                       "tables": sorted(tables(sim.world))})
                return 200, data, "application/x-ndjson"
        except (ValueError, TypeError) as e:
            return _json(400, {"error": str(e)})
        return _json(404, {"error": f"no control endpoint {method} /_sim/{path}"})

