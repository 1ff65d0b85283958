"""Turn whatever a failed run raised into one line a person can act on."""

from __future__ import annotations

from dlt.common.configuration.exceptions import ConfigFieldMissingException

from .errors import GrowthOSError


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        out.append(e)
        for nxt in (e.__cause__, e.__context__, getattr(e, "exception", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return out


def one_line(exc: BaseException) -> str:
    """The most specific explanation found in the exception chain, on one line."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, GrowthOSError):
            return str(e)
    for e in chain:
        if isinstance(e, ConfigFieldMissingException):
            fields = ", ".join(e.fields)
            if "api_key" in fields:
                return ("no GrowthOS API key configured: set SOURCES__GROWTHOS__API_KEY or "
                        "api_key under [sources.growthos] in .dlt/secrets.toml")
            return f"missing configuration: {fields} (see .dlt/config.toml)"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:400]}"
