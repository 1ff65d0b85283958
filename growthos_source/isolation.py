"""One table failing does not lose the others.

dlt extracts every resource of a run into one load package and drops the whole package when
any resource raises, so one missing scope or one broken endpoint would leave every table
unloaded. `run_each` runs the source; when extraction fails in a resource it notes the tables
that failed with it (a hidden parent walk stands for every table it feeds), runs the source
again without them, and so on, until the rest loads. Nothing of a failed attempt is kept (its
package is never committed), so append-only tables such as `events` never load twice, and the
failed tables' marks stay where they were: the next run retries them. The caller then raises
`TablesFailedError`, one line naming every failed table and why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dlt.common.pipeline import LoadInfo
from dlt.extract.exceptions import PipeException
from dlt.extract.source import DltSource
from dlt.pipeline.exceptions import PipelineStepFailed

from .cli_errors import one_line
from .endpoints import BY_TABLE, user_tables
from .errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    GrowthOSError,
    ScopeError,
)

logger = logging.getLogger("growthos_source")


@dataclass
class Failure:
    tables: tuple[str, ...]
    error: BaseException


class TablesFailedError(GrowthOSError):
    """Some tables could not be read; every other table was loaded and committed."""

    def __init__(self, failures: list[Failure], result: Any = None) -> None:
        self.failures = failures
        self.tables = tuple(t for f in failures for t in f.tables)
        self.result = result  # the SyncResult of what did load
        super().__init__(describe(failures, loaded=getattr(result, "load_info", 1) is not None))

    def __reduce__(self) -> tuple[Any, ...]:
        return (GrowthOSError, (self.message,))


def describe(failures: list[Failure], loaded: bool = True) -> str:
    """`failures` as one line: the tables, each reason, the fix; missing scopes all at once."""
    scopes: dict[str, list[str]] = {}
    granted: list[str] = []
    others: list[str] = []
    for f in failures:
        scope = next((e for e in _chain(f.error) if isinstance(e, ScopeError)), None)
        if scope is not None:
            scopes.setdefault(scope.required_scope or "a scope the API did not name",
                              []).extend(f.tables)
            granted = granted or scope.granted_scopes
        else:
            others.append(f"{', '.join(f.tables)}: {one_line(f.error)}")
    parts = []
    if scopes:
        needs = "; ".join(f"{s} ({', '.join(t)})" for s, t in scopes.items())
        parts.append(f"the API key lacks scope {needs}: add the scope to the key, or leave "
                     "these tables out (--resources) or set on_missing_scope='skip' "
                     f"(granted scopes: {', '.join(granted) or 'none'})")
    parts.extend(others)
    failed = ", ".join(t for f in failures for t in f.tables)
    done = "every other table was loaded" if loaded else "no table was loaded"
    return f"not loaded: {failed} ({done}; the next run retries these) - {' | '.join(parts)}"


def _chain(exc: BaseException) -> list[BaseException]:
    out, todo = [], [exc]
    while todo:
        e = todo.pop()
        if e in out:
            continue
        out.append(e)
        todo.extend(n for n in (e.__cause__, e.__context__) if n is not None)
    return out


# Errors that no table escapes (a wrong key, bad settings, an unreachable host): running the
# others again would only fail the same way.
_FOR_ALL = (AuthenticationError, ConfigurationError, ConnectionFailedError)


def failed_resource(exc: PipelineStepFailed) -> str | None:
    """The resource whose extraction raised, if the run failed in extract for a reason of
    that resource's own."""
    if exc.step != "extract":
        return None
    chain = _chain(exc)
    if any(isinstance(e, _FOR_ALL) for e in chain):
        return None
    for e in chain:
        if isinstance(e, PipeException) and e.pipe_name in BY_TABLE:
            return e.pipe_name
    return None


def run_each(source: DltSource, run: Callable[[DltSource], LoadInfo]
             ) -> tuple[LoadInfo | None, list[Failure]]:
    """Run `source`; if a resource fails to extract, run it again without the tables that
    failed with it. Returns the last load and the failures (empty when all loaded)."""
    failures: list[Failure] = []
    while True:
        selected = tuple(source.selected_resources)
        if not selected:
            return None, failures
        try:
            return run(source), failures
        except PipelineStepFailed as exc:
            resource = failed_resource(exc)
            if resource is None:
                raise
            tables = user_tables(resource, selected)
            if not tables:
                raise
            failures.append(Failure(tables, exc))
            logger.warning("%s not loaded: %s", ", ".join(tables), one_line(exc))
            rest = [t for t in selected if t not in tables]
            if not rest:
                if len(failures) == 1:
                    raise  # the run's only table(s) failed: dlt's own error, as before
                return None, failures
            source = source.with_resources(*rest)


def failing(table: str, run: Callable[[], None]) -> list[Failure]:
    """Run `run` (loads of `table` alone, e.g. the chunked events backfill): a failure to
    extract `table` is returned instead of raised."""
    try:
        run()
    except PipelineStepFailed as exc:
        if failed_resource(exc) != table:
            raise
        logger.warning("%s not loaded: %s", table, one_line(exc))
        return [Failure((table,), exc)]
    return []


def without(source: DltSource, failures: list[Failure]) -> DltSource:
    """`source` without the tables that already failed in this sync."""
    failed = {t for f in failures for t in f.tables}
    if not failed:
        return source
    return source.with_resources(*[t for t in source.selected_resources if t not in failed])
