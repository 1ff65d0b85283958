"""Steps that start on dlt's thread and finish in dlt's extract pool.

dlt evaluates a transformer that is not parallelized on its one extract thread, the thread that
also hands every other table its parents' pages. A per-parent child list that must first read
the warehouse (dlt's configuration context is not thread-safe, so that read stays on dlt's
thread) would otherwise walk its parents' lists there too, and every table behind it would wait
for each of its pages. Such a step yields `ON_POOL` once the read is done; `finish_on_pool`
hands the rest of it to dlt's pool one item at a time, as dlt runs a parallelized generator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final


class OnPool:
    """The type of `ON_POOL`: what a step yields when it needs no more of dlt's thread."""


ON_POOL: Final = OnPool()

Step = Callable[[Any], Iterator[Any]]


def finish_on_pool(step: Step) -> Step:
    """`step` as dlt's thread runs it up to its `ON_POOL`, the rest as deferred calls."""
    def run(items: Any) -> Iterator[Any]:
        gen = step(items)
        for item in gen:
            if item is ON_POOL:
                yield from _deferred(gen)
                return
            yield item
    return run


def _deferred(gen: Iterator[Any]) -> Iterator[Any]:
    """Callables that each return `gen`'s next item (None once it ends), one at a time: dlt
    runs a callable it is handed in its pool. While one runs this yields None, which tells dlt
    to go on with other tables."""
    running = False
    ended = False

    def one() -> Any:
        nonlocal running, ended
        try:
            return next(gen)
        except StopIteration:
            ended = True
            return None
        finally:
            running = False

    try:
        while not ended:
            if running:
                yield None
                continue
            running = True
            yield one
    except GeneratorExit:
        close = getattr(gen, "close", None)
        if close is not None:
            close()
        raise
