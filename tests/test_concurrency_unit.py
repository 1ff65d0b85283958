"""Unit tests of concurrency.py (the learnt concurrency limit) and of fanout.py under a limit:
no more walks advance at once than the limit allows, every item arrives exactly once, and a
limit that falls mid-run never strands a parked walk."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from growthos_source.http.concurrency import ConcurrencyLimit
from growthos_source.http.fanout import DONE, fan_out


def feed(limit: ConcurrencyLimit, latency: float, times: int) -> None:
    for _ in range(times):
        limit.observe(latency)


def test_the_limit_starts_open_and_stays_there_while_latency_holds() -> None:
    limit = ConcurrencyLimit(16)
    assert limit.limit == 16
    feed(limit, 0.050, 200)
    assert limit.limit == 16


def test_queueing_latency_shrinks_the_limit_and_fast_answers_grow_it_again() -> None:
    limit = ConcurrencyLimit(16, minimum=2)
    feed(limit, 0.001, 16)  # the fastest the API answers
    feed(limit, 0.030, 16)  # 30x slower: requests are queueing
    assert limit.limit == 12  # shrunk by a quarter
    feed(limit, 0.030, 60)
    assert limit.limit == 2  # never below the minimum
    feed(limit, 0.0012, 4)
    assert limit.limit == 3  # back to fast answers: one more at a time
    feed(limit, 0.0012, 4)
    assert limit.limit == 4


def test_a_slower_network_becomes_the_new_normal() -> None:
    limit = ConcurrencyLimit(8)
    feed(limit, 0.001, 8)
    feed(limit, 0.100, 8 * 30)  # the old minimum falls out of the history
    assert limit.limit == 8


def test_the_limit_rejects_impossible_bounds() -> None:
    with pytest.raises(ValueError):
        ConcurrencyLimit(2, minimum=3)


class Probe:
    """Jobs that count how many of them are advancing (between two items) at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def job(self, name: str, items: int) -> Callable[[], Iterator[str]]:
        def run() -> Iterator[str]:
            for i in range(items):
                with self.lock:
                    self.now += 1
                    self.most = max(self.most, self.now)
                time.sleep(0.003)  # a request
                with self.lock:
                    self.now -= 1
                yield f"{name}{i}"
        return run


def collect(out: Iterator[tuple[Any, Any]]) -> list[str]:
    return sorted(item for _, item in out if item is not DONE)


@pytest.mark.timeout(60)
def test_no_more_walks_advance_than_the_limit() -> None:
    probe = Probe()
    jobs = [(n, probe.job(n, 5)) for n in "abcdef"]
    got = collect(fan_out(jobs, workers=6, limit=lambda: 2))
    assert got == sorted(f"{n}{i}" for n in "abcdef" for i in range(5))
    assert probe.most == 2


@pytest.mark.timeout(60)
def test_a_falling_limit_parks_walks_and_every_item_still_arrives() -> None:
    probe = Probe()
    calls = iter(range(10**9))
    jobs = [(n, probe.job(n, 20)) for n in "abcdefgh"]
    got = collect(fan_out(jobs, workers=8, limit=lambda: 8 if next(calls) < 40 else 1))
    assert got == sorted(f"{n}{i}" for n in "abcdefgh" for i in range(20))
    assert probe.now == 0


@pytest.mark.timeout(60)
def test_a_worker_waiting_for_more_work_never_strands_a_parked_walk() -> None:
    # `more` waits until every walk has finished (as splitting.py waits for walks it cannot
    # size yet); with a limit of 1, the walk parked meanwhile must still get its place.
    probe = Probe()
    finished: set[str] = set()

    def job(name: str) -> Callable[[], Iterator[str]]:
        inner = probe.job(name, 10)

        def run() -> Iterator[str]:
            yield from inner()
            finished.add(name)
        return run

    def more() -> None:
        while len(finished) < 2:
            time.sleep(0.01)

    calls = iter(range(10**9))
    got = collect(fan_out([("a", job("a")), ("b", job("b"))], workers=3, more=more,
                          limit=lambda: 2 if next(calls) < 4 else 1))
    assert got == sorted(f"{n}{i}" for n in "ab" for i in range(10))
    assert probe.most <= 2
