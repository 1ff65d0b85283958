"""Unit tests of http/concurrency.py (the concurrency limit: from rate x request time, or
learnt from latencies) and of fanout.py under a limit: no more walks advance at once than the
limit allows, every item arrives exactly once, a limit that falls mid-run never strands a
parked walk, and the places are one budget shared by every fan-out of a client."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from growthos_source.http import GrowthOSClient
from growthos_source.http.concurrency import FLOOR, START, ConcurrencyLimit, Places, walks_needed
from growthos_source.http.fanout import DONE, fan_out, read_ahead
from growthos_source.splitting import Splitter, Window


def feed(limit: ConcurrencyLimit, latency: float, times: int) -> None:
    for _ in range(times):
        limit.observe(latency)


@pytest.mark.parametrize("rate,seconds,walks", [
    (100, 0.200, 30),  # Scale, an API on another continent: 20 in flight, with the margin
    (100, 0.300, 45),
    (100, 0.050, 8),   # Scale at 50 ms
    (50, 0.050, 4),    # Growth at 50 ms
    (10, 0.050, 1),    # Free at 50 ms: one walk reads twice as fast as the key may
    (10, 0.080, 1),    # one walk still suffices: it is busy 80 % of the time
    (10, 0.090, 2),    # over that, the margin applies
    (10, 0.300, 5),
    (100, 0.001, 1),   # an API next door
])
def test_walks_follow_littles_law_with_a_margin(rate: float, seconds: float, walks: int) -> None:
    assert walks_needed(rate, seconds, 1, 64) == walks


def test_walks_needed_stays_within_the_bounds() -> None:
    assert walks_needed(100, 2.0, 1, 64) == 64  # the configured maximum (`workers`)
    assert walks_needed(100, 0.0, 2, 64) == 2


def test_with_a_known_rate_the_limit_is_rate_times_the_median_request_time() -> None:
    rate: list[float | None] = [None]
    limit = ConcurrencyLimit(64, rate=lambda: rate[0])
    assert limit.limit == START == 4  # nothing known: the latency-learnt limit's start
    feed(limit, 0.200, 10)
    assert limit.limit == 8  # no rate yet: latency-learnt (doubled after START samples)
    rate[0] = 100.0
    assert limit.limit == limit.width == 30
    feed(limit, 0.050, 60)  # the median follows the recent requests
    assert limit.limit == limit.width == 8
    before_any = ConcurrencyLimit(20, rate=lambda: 100.0)
    assert before_any.limit == before_any.width == START  # the first answers will size it
    capped = ConcurrencyLimit(20, rate=lambda: 100.0)
    feed(capped, 0.300, 5)  # needs 45 walks of 20: latency sizes them, from START
    assert (capped.limit, capped.width) == (8, 20)
    feed(capped, 0.300, 4 + 8 + 16)
    assert capped.limit == 20  # doubled up to the maximum while the answers keep their pace


def test_the_service_time_sizes_the_rate_based_limit() -> None:
    limit = ConcurrencyLimit(64, rate=lambda: 100.0)
    for _ in range(8):
        limit.observe(0.050, 0.100)  # exchange 50 ms, with decoding 100 ms
    assert limit.limit == 15


def test_a_client_sizes_its_walks_from_the_announced_limit_and_one_budget_serves_all() -> None:
    """X-RateLimit-Limit (here Growth's 50 req/s) and the request times give the size; the
    places of a client are one object whatever reads through it."""
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [], "has_more": False, "next_cursor": None},
                              headers={"X-RateLimit-Limit": "50",
                                       "X-RateLimit-Remaining": "49"})

    client = GrowthOSClient("https://api.test/v1", "gos_sk_test_x", max_concurrency=40,
                            transport=httpx.MockTransport(handler))
    client.request("GET", "/contacts")
    for _ in range(70):
        client.concurrency.observe(0.200)  # as if the API were 200 ms away
    assert client.concurrency_limit() == 15  # 50 req/s x 0.2 s x 1.5
    assert client.places is client.places and isinstance(client.places, Places)
    client.close()


def test_the_limit_starts_small_and_doubles_to_the_maximum_while_latency_holds() -> None:
    """Slow start: an API 300 ms away that serves any number of walks gets them all within a
    few revisions (each one round trip of the walks in flight), not one walk per revision."""
    limit = ConcurrencyLimit(64)
    assert (limit.limit, limit.width) == (START, 64)  # 64 walks start; START advance at once
    seen = []
    for _ in range(5):
        feed(limit, 0.300, limit.limit)
        seen.append(limit.limit)
    assert seen == [8, 16, 32, 64, 64]
    feed(limit, 0.300, 500)
    assert limit.limit == 64


def test_queueing_latency_shrinks_the_limit_and_fast_answers_grow_it_again() -> None:
    limit = ConcurrencyLimit(16, minimum=2)
    feed(limit, 0.001, 4)  # the fastest the API answers
    feed(limit, 0.001, 8)
    assert limit.limit == 16  # doubled twice
    feed(limit, 0.030, 16)  # 30x slower: requests are queueing
    assert limit.limit == 12  # shrunk by a quarter; slow start is over
    feed(limit, 0.030, 60)
    assert limit.limit == 2  # never below the minimum
    feed(limit, 0.0012, 4)
    assert limit.limit == 3  # back to fast answers: one more at a time
    feed(limit, 0.0012, 4)
    assert limit.limit == 4
    assert limit.width == 16  # the walks started stay the most the limit may grow to


def test_a_slower_network_becomes_the_new_normal() -> None:
    limit = ConcurrencyLimit(8)
    feed(limit, 0.001, 8)
    feed(limit, 0.100, 8 * 30)  # the old minimum falls out of the history
    assert limit.limit == 8


def test_a_rate_no_walk_count_can_reach_is_sized_by_latency() -> None:
    """An "unlimited" key still announces a limit (here 1,000,000 req/s): Little's law would
    ask for every walk at once. Latency sizes them instead, as without a rate: all 64 start,
    and the places grow from START while answers stay fast and shrink when requests queue."""
    limit = ConcurrencyLimit(64, rate=lambda: 1_000_000.0)
    feed(limit, 0.002, 1)
    assert (limit.limit, limit.width) == (START, 64)
    feed(limit, 0.002, 3 + 8 + 16)
    assert limit.limit == 32  # answers as fast as ever: doubling
    feed(limit, 0.150, 32)  # each request waits its turn behind 31 others
    assert limit.limit == 24
    feed(limit, 0.150, 24 + 18 + 13 + 9 + 6 + 4 + 4 * 5)
    assert limit.limit == FLOOR == 2  # never one: the API would idle while we read
    feed(limit, 0.002, 4)
    assert limit.limit == 3  # fast answers again: one more at a time
    feed(limit, 0.002, 4)
    assert limit.limit == 4
    assert limit.width == 64
    assert ConcurrencyLimit(1, rate=lambda: 1_000_000.0).limit == 1  # the maximum still rules


def test_a_rate_the_walks_can_reach_is_not_second_guessed_by_latency() -> None:
    """Pages slower than the first probes are not a queue: at Scale's 100 req/s the limit
    stays what the rate needs, whatever the spread of request times."""
    limit = ConcurrencyLimit(64, rate=lambda: 100.0)
    feed(limit, 0.010, 4)  # probes: one row each
    feed(limit, 0.060, 400)  # full pages, six times slower
    assert limit.limit == 9  # 100 req/s x 0.06 s x 1.5


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
def test_workers_beyond_the_limit_split_nothing_until_a_place_frees() -> None:
    """More workers than places (the latency-learnt limit below `workers`): the idle ones ask
    for a split only when a place frees up, not while the limit's walks still run."""
    probe = Probe()
    asked: list[int] = []

    def more() -> tuple[str, Callable[[], Iterator[str]]] | None:
        with probe.lock:
            asked.append(probe.now)
        return None

    jobs = [(n, probe.job(n, 20)) for n in "ab"]
    got = collect(fan_out(jobs, workers=8, more=more, limit=lambda: 2))
    assert got == sorted(f"{n}{i}" for n in "ab" for i in range(20))
    assert probe.most == 2
    assert asked and max(asked) < 2  # asked only once a walk had ended and left its place


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


@pytest.mark.timeout(60)
def test_two_fan_outs_of_one_client_share_its_places() -> None:
    """Two resources (two fan-outs in two threads, as dlt's extract workers run them) with one
    budget of 3 places: never more than 3 walks advance at once in all, every item arrives."""
    probe = Probe()
    places = Places(lambda: 3)
    results: dict[str, list[str]] = {}

    def resource(name: str) -> None:
        jobs = [(f"{name}{n}", probe.job(f"{name}{n}", 6)) for n in "abcd"]
        results[name] = collect(fan_out(jobs, workers=4, places=places))

    threads = [threading.Thread(target=resource, args=(name,)) for name in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("x", "y"):
        assert results[name] == sorted(f"{name}{n}{i}" for n in "abcd" for i in range(6))
    assert probe.most <= 3 and places.taken == 0


@pytest.mark.timeout(60)
def test_a_fan_out_nobody_reads_from_holds_no_places() -> None:
    """A resource whose consumer stops pulling (dlt busy elsewhere) fills its queue; its
    workers then wait without a place, so the other resource of the client still runs."""
    places = Places(lambda: 1)
    stalled = fan_out([(n, (lambda: iter(range(1000)))) for n in "ab"], workers=2,
                      places=places)
    first = next(stalled)  # started, then not read from again for now
    other = collect(fan_out([(n, (lambda n=n: iter([f"{n}{i}" for i in range(50)])))
                             for n in "cd"], workers=2, places=places))
    assert other == sorted(f"{n}{i}" for n in "cd" for i in range(50))
    rest = [item for _, item in stalled if item is not DONE]
    assert len(rest) + 1 == 2000 and first[1] == 0


@pytest.mark.timeout(60)
def test_a_worker_waiting_to_split_a_walk_holds_no_place() -> None:
    """An idle worker of the event stream waits for a walk's first rows before it can split
    it (splitting.py). It waited holding a place: with the walk's page empty (a window with
    nothing in it yet, a page of events all read before) and its request slow, a client of two
    places had none left, and a child list of another table (dlt's pool, the same client)
    waited for ever. The waiting worker now gives its place back."""
    places = Places(lambda: 2)
    go = threading.Event()
    lo = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    hi = lo + dt.timedelta(days=1)

    def make_walk(a: dt.datetime, b: dt.datetime | None,
                  window: Window) -> Callable[[], Iterator[list[dict[str, Any]]]]:
        def pages() -> Iterator[list[dict[str, Any]]]:
            yield window.clip([])[0]  # a first page with no rows: the walk's size is unknown
            go.wait(30)  # its next request is slow, and holds its place meanwhile
            yield window.clip([{"id": "e1", "timestamp": "2025-01-01T12:00:00Z"}])[0]
        return pages

    splitter = Splitter(make_walk, min_rows=1)
    events = fan_out([(0, splitter.job(lo, hi, hi))], 2, more=splitter.more, places=places)
    assert next(events) == (0, [])  # the walk runs; the other worker waits to split it
    other: list[str] = []
    child = threading.Thread(target=lambda: other.extend(collect(fan_out(
        [(n, (lambda n=n: iter([f"{n}0"]))) for n in "ab"], workers=2, places=places))),
        daemon=True)
    child.start()
    child.join(10)
    go.set()
    alive = child.is_alive()
    rest = [item for _, item in events if item is not DONE]
    assert not alive, "the other fan-out got no place while a worker waited to split"
    assert other == ["a0", "b0"] and rest == [[{"id": "e1", "timestamp":
                                                 "2025-01-01T12:00:00Z"}]]
    assert places.taken == 0


@pytest.mark.timeout(60)
def test_read_ahead_yields_one_jobs_items_in_order_from_another_thread() -> None:
    threads: set[str] = set()

    def job() -> Iterator[int]:
        for i in range(100):
            threads.add(threading.current_thread().name)
            yield i

    places = Places(lambda: 1)
    assert list(read_ahead(job, places)) == list(range(100))
    assert threading.current_thread().name not in threads and places.taken == 0


@pytest.mark.timeout(60)
def test_read_ahead_hands_on_the_jobs_error() -> None:
    def job() -> Iterator[int]:
        yield 1
        raise RuntimeError("the walk failed")

    items = read_ahead(job)
    assert next(items) == 1
    with pytest.raises(RuntimeError, match="the walk failed"):
        next(items)


def _parked(places: Places, priority: float, order: list[float]) -> threading.Thread:
    """A thread that waits for a place with `priority`, notes it, and gives the place back."""
    def go() -> None:
        places.enter(priority=priority)
        order.append(priority)
        places.leave()
    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def _wait_parked(places: Places, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(places._waiting) < n:  # white box: until every thread has parked
        assert time.monotonic() < deadline, "the walks did not park"
        time.sleep(0.01)


@pytest.mark.timeout(60)
def test_a_freed_place_goes_to_the_walk_with_the_most_pages_left() -> None:
    """Longest remaining first; walks of unknown length (the default) before any of known
    length; equals in the order they came."""
    places = Places(lambda: 1)
    places.enter()
    order: list[float] = []
    threads = []
    for n, priority in enumerate((3.0, 40.0, 7.0, float("inf"), 40.0)):
        threads.append(_parked(places, priority, order))
        _wait_parked(places, n + 1)
    places.leave()
    for t in threads:
        t.join(10)
    assert order == [float("inf"), 40.0, 40.0, 7.0, 3.0] and places.taken == 0


@pytest.mark.timeout(60)
def test_a_running_walk_gives_way_only_to_one_with_clearly_more_left() -> None:
    places = Places(lambda: 1)
    places.enter(priority=10.0)
    order: list[float] = []
    near = _parked(places, 16.0, order)  # not over 10 x 1.5 + 2
    _wait_parked(places, 1)
    assert places.keep(10.0) and places.taken == 1
    far = _parked(places, 18.0, order)
    _wait_parked(places, 2)
    assert not places.keep(10.0)  # the place went to the 18-page walk
    far.join(10)
    places.enter(priority=10.0)  # gets a place once the 16-page walk had its turn
    assert order == [18.0, 16.0]
    near.join(10)
    assert places.keep(float("inf"))  # unknown length: never preempted
    places.leave()
    assert places.taken == 0


@pytest.mark.timeout(60)
def test_fan_out_starts_the_longest_jobs_first() -> None:
    started: list[str] = []

    def job(name: str) -> Callable[[], Iterator[str]]:
        def run() -> Iterator[str]:
            started.append(name)
            yield name
        return run

    jobs = [(k, job(k)) for k in "abcde"]
    sizes = {"a": 1.0, "b": 50.0, "d": 5.0, "e": 50.0}  # c: unknown
    got = collect(fan_out(jobs, workers=1, sizes=sizes))  # one worker: jobs in their order
    assert got == list("abcde")
    assert started == ["c", "b", "e", "d", "a"]
