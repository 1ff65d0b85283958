"""Routes come from the OpenAPI document itself, so the server cannot drift from its contract:
every documented operation must have a handler, and its required scope is read from the
operation's `x-required-scope`."""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from .table import Record
from .world import ApiKeyInfo, World

DOC_PATH = "openapi/management.yaml"


@dataclass
class Request:
    """What a handler sees of one API call."""

    method: str
    op_id: str
    params: dict[str, str]
    path_params: dict[str, str]
    body: Any
    key: ApiKeyInfo
    world: World
    request_id: str
    cursor_secret: Any  # pagination.Cursors


@dataclass
class Response:
    status: int = 200
    body: Record | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]
HANDLERS: dict[str, Handler] = {}


def handler(op_id: str) -> Callable[[Handler], Handler]:
    """Register the implementation of one documented operation."""
    def deco(fn: Handler) -> Handler:
        HANDLERS[op_id] = fn
        return fn
    return deco


@dataclass
class Route:
    method: str
    template: str
    segments: list[str]
    op_id: str
    scope: str
    body_schema: dict[str, Any] | None


def load_document(path: str = DOC_PATH) -> tuple[bytes, dict[str, Any]]:
    raw = importlib.resources.files("growthos_sim").joinpath(path).read_bytes()
    return raw, yaml.safe_load(raw)


class Router:
    """Matches `/v1/...` paths against the document's path templates."""

    def __init__(self, doc: dict[str, Any], handlers: dict[str, Any] | None = None) -> None:
        from . import api  # noqa: F401  (registers the handlers)

        registry = HANDLERS if handlers is None else handlers
        self.doc = doc
        self.routes: list[Route] = []
        for template, item in doc["paths"].items():
            for method, op in item.items():
                if method not in ("get", "post", "patch", "delete", "put"):
                    continue
                op_id = op["operationId"]
                if op_id not in registry:
                    raise RuntimeError(f"documented operation {op_id} has no handler")
                schema = None
                rb = op.get("requestBody")
                if rb:
                    schema = rb["content"]["application/json"]["schema"]
                self.routes.append(Route(method.upper(), template, template.strip("/").split("/"),
                                         op_id, op.get("x-required-scope", ""), schema))
        # Literal segments win over parameters (`/entries/approve-batch` vs `/entries/{x}`).
        self.routes.sort(key=lambda r: [s.startswith("{") for s in r.segments])

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path params, path_exists): path_exists distinguishes 405 from 404."""
        path_exists = False
        for r in self.routes:
            params = self._params(r, path)
            if params is None:
                continue
            path_exists = True
            if r.method == method:
                return r, params, True
        return None, {}, path_exists

    def allowed(self, path: str) -> list[str]:
        """The methods the document declares on `path` (for a 405's `Allow` header)."""
        return sorted({r.method for r in self.routes if self._params(r, path) is not None})

    @staticmethod
    def _params(route: Route, path: str) -> dict[str, str] | None:
        parts = path.strip("/").split("/")
        if len(parts) != len(route.segments):
            return None
        params: dict[str, str] = {}
        for seg, part in zip(route.segments, parts):
            if seg.startswith("{"):
                if not part:
                    return None
                params[seg[1:-1]] = part
            elif seg != part:
                return None
        return params

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.doc
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema
