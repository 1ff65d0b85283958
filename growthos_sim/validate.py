"""Request-body validation against the document's schemas (400 bad JSON, 422 invalid fields).

A small validator for the JSON Schema subset the document uses: type, enum, required,
properties, items, minimum/maximum, minItems, $ref, allOf, anyOf/oneOf, and the string formats
date-time, date, email and uri.
"""

from __future__ import annotations

import datetime as dt
import re
import weakref
from typing import TYPE_CHECKING, Any

import orjson

from .errors import ApiError, invalid

if TYPE_CHECKING:
    from .routing import Router

_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool,
                          "null": type(None)}


def _type_ok(value: Any, t: str) -> bool:
    if t == "integer":
        # JSON does not tell 51 from 51.0; JSON Schema counts both as integers.
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[t])


_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]*")


def _date_time_ok(v: str) -> bool:
    if not _DATE_TIME.fullmatch(v):
        return False
    try:
        dt.datetime.fromisoformat(v.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _date_ok(v: str) -> bool:
    if not _DATE.fullmatch(v):
        return False
    try:
        dt.date.fromisoformat(v)
    except ValueError:
        return False
    return True


# The string formats the document's request bodies use (RFC 3339 date-time and date, an
# addr-spec-like email, an absolute URI); other formats are not checked.
_FORMATS: dict[str, Any] = {"date-time": _date_time_ok, "date": _date_ok,
                            "email": lambda v: bool(_EMAIL.fullmatch(v)),
                            "uri": lambda v: bool(_URI.fullmatch(v))}


def _check(router: Router, schema: dict[str, Any], value: Any, path: str) -> None:
    schema = router.resolve(schema)
    for sub in schema.get("allOf", []):
        _check(router, sub, value, path)
    alts = schema.get("anyOf") or schema.get("oneOf")
    if alts:
        errors = []
        for sub in alts:
            try:
                _check(router, sub, value, path)
                break
            except ApiError as e:
                errors.append(e)
        else:
            raise errors[0]
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if not any(_type_ok(value, x) for x in types):
            raise invalid(path, f"must be of type {' or '.join(types)}")
    if "enum" in schema and value not in schema["enum"]:
        raise invalid(path, f"must be one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise invalid(path, f"must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise invalid(path, f"must be at most {schema['maximum']}")
    if isinstance(value, str):
        fmt = schema.get("format")
        if fmt in _FORMATS and not _FORMATS[fmt](value):
            raise invalid(path, f"must be a valid {fmt}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise invalid(path, f"must have at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise invalid(path, f"must have at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise invalid(path, f"must match {schema['pattern']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                raise invalid(f"{path}.{name}".lstrip("."), "is required")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                _check(router, sub, value[name], f"{path}.{name}".lstrip("."))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise invalid(path, f"must have at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise invalid(path, f"must have at most {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                _check(router, schema["items"], item, f"{path}[{i}]")


def _required_bodies(router: Router) -> set[int]:
    """Identities of the request-body schemas whose operation declares `required: true`."""
    ids = _REQUIRED.get(router)
    if ids is None:
        ids = set()
        for item in router.doc["paths"].values():
            for op in item.values():
                rb = op.get("requestBody") if isinstance(op, dict) else None
                if rb and rb.get("required"):
                    ids.add(id(rb["content"]["application/json"]["schema"]))
        _REQUIRED[router] = ids
    return ids


_REQUIRED: weakref.WeakKeyDictionary[Router, set[int]] = weakref.WeakKeyDictionary()


def check_body(router: Router, schema: dict[str, Any], raw: bytes) -> Any:
    """Parse and validate a JSON request body. A missing body is 400 where the operation
    requires one, else an empty object."""
    if not raw.strip():
        if id(schema) in _required_bodies(router):
            raise ApiError(400, "invalid_request", "this operation requires a JSON request body")
        body: Any = {}
    else:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, "invalid_request", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the request body must be a JSON object")
    _check(router, schema, body, "")
    return body


def check_value(router: Router, schema: dict[str, Any], value: Any, path: str) -> None:
    """Validate an already parsed value (one item of a batch) against a schema: 422 if not."""
    _check(router, schema, value, path)
