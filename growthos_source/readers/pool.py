"""Steps that start on dlt's thread and finish in dlt's extract pool.

dlt evaluates a transformer that is not parallelized on its one extract thread, the thread that
also hands every other table its parents' pages. A per-parent child list that must first read
the warehouse (dlt's configuration context is not thread-safe, so that read stays on dlt's
thread) would otherwise walk its parents' lists there too, and every table behind it would wait
for each of its pages. Such a step yields `ON_POOL` once the read is done; `finish_on_pool`
hands the rest of it to dlt's pool one item at a time, with dlt's own wrapper for parallelized
generators (callables dlt runs in its pool; None while one runs).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any, Final, cast

from dlt.extract.utils import wrap_parallel_iterator


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
                # the steps are generator functions, which dlt's wrapper closes on exit
                yield from wrap_parallel_iterator(cast(Generator[Any, None, None], gen))
                return
            yield item
    return run
