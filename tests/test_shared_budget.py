"""One budget per client over real HTTP: every resource's walks share one rate limiter and one
set of places, so resources read side by side stay under the key's limit (no 429 storm) and
never have more walks in flight together than the client allows."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import control
from warehouse import Warehouse, assert_equals_truth

from growthos_sim import DEFAULT_KEY
from growthos_source.http import GrowthOSClient
from growthos_source.http.fanout import DONE, fan_out


@pytest.mark.timeout(300)
def test_two_resources_walking_at_once_share_one_limiter_and_one_set_of_places(
        make_sim) -> None:
    """Two resources of one client, each with four walks on four threads, on a Growth key
    (50 req/s): one schedule for both keeps them under the limit (two schedules would send
    twice the key's rate), and at most the client's 3 places advance at once in all."""
    sim = make_sim(contacts=300, events=3000, plan="growth", latency_ms=10)
    client = GrowthOSClient(sim.base_url, DEFAULT_KEY, max_concurrency=3)
    before = control(sim, "GET", "stats").json()
    lock = threading.Lock()
    most = [0]
    pages: dict[str, int] = {}

    def job(path: str, params: dict[str, str]) -> Callable[[], Iterator[int]]:
        def run() -> Iterator[int]:
            for page in client.paginate(path, params, page_size=25):
                with lock:
                    most[0] = max(most[0], client.places.taken)
                yield len(page.data)
        return run

    def resource(name: str, path: str, variants: list[dict[str, str]]) -> None:
        jobs = [(i, job(path, p)) for i, p in enumerate(variants)]
        pages[name] = sum(1 for _, n in fan_out(jobs, 4, places=client.places)
                          if n is not DONE)

    threads = [threading.Thread(target=resource, args=("contacts", "/contacts", [{}] * 4)),
               threading.Thread(target=resource, args=(
                   "events", "/analytics/events",
                   [{"from": f"20{y}-01-01T00:00:00Z"} for y in (10, 11, 12, 13)]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    after = control(sim, "GET", "stats").json()
    requests = after.get("requests", 0) - before.get("requests", 0)
    throttled = after.get("rate_limited", 0) - before.get("rate_limited", 0)
    assert pages["contacts"] == 4 * 12 and pages["events"] >= 4 * 120
    assert requests == client.stats.requests_sent
    assert throttled <= 1 + requests // 100, (throttled, requests)
    assert 1 <= most[0] <= 3


@pytest.mark.timeout(300)
def test_a_sync_of_two_resources_on_the_free_plan_stays_under_its_limit(
        make_sim, tmp_path: Path) -> None:
    """contacts and events extracted side by side on a Free key (10 req/s) through one source:
    one client, one schedule; the copy is exact and the API refuses next to nothing."""
    sim = make_sim(contacts=300, events=3000, plan="free", latency_ms=20)
    wh = Warehouse(tmp_path, sim)
    before = control(sim, "GET", "stats").json()
    wh.sync(resources=("contacts", "events"))
    after = control(sim, "GET", "stats").json()
    requests = after.get("requests", 0) - before.get("requests", 0)
    throttled = after.get("rate_limited", 0) - before.get("rate_limited", 0)
    assert_equals_truth(wh, "contacts")
    assert_equals_truth(wh, "events")
    assert throttled <= 1 + requests // 100, (throttled, requests)
