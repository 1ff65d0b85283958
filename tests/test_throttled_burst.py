"""429s of one crowded window over real HTTP: the requests already on their way when the first
429 comes back were counted in the same window, so together they lower the pacing share one
step. Each used to take a step of its own, and every step takes 30 calm seconds to win back:
five 429s of one opening burst held a nightly run two minutes below its pace."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from growthos_sim import DEFAULT_KEY
from growthos_source.http import GrowthOSClient
from growthos_source.http.pacing import DEFAULT_SAFETY, SAFETY_STEP, RateLimiter

CONCURRENT = 5  # the requests a client sends before a response has told it the limit


def _at_once(client: GrowthOSClient, n: int) -> list[Any]:
    """`n` requests of `client` from `n` threads released together."""
    start = threading.Barrier(n)
    pages: list[Any] = []

    def one() -> None:
        start.wait()
        pages.append(client.request("GET", "/segments", params={"limit": 1}))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return pages


@pytest.mark.timeout(120)
def test_the_429s_of_one_crowded_window_lower_the_pacing_share_once(make_sim: Any,
                                                                    api: Any) -> None:
    sim = make_sim(contacts=50, events=500, plan="free")  # 10 requests per one-second window
    other = api(sim)  # the same key, used elsewhere: it fills the window first
    for _ in range(5):
        limiter = RateLimiter()
        client = GrowthOSClient(sim.base_url, DEFAULT_KEY, rate_limiter=limiter)
        time.sleep(1.02 - time.time() % 1)  # just after a window begins
        assert all(other.get("/segments", params={"limit": 1}).status_code == 200
                   for _ in range(10))
        pages = _at_once(client, CONCURRENT)
        client.close()
        throttled = client.stats.throttled
        if throttled >= 2:  # else the window ended under the burst: arrange it again
            break
    assert throttled >= 2, "could not land two of the client's requests in a full window"
    assert len(pages) == CONCURRENT and all(p["data"] for p in pages)  # all retried, served
    assert limiter.share == pytest.approx(DEFAULT_SAFETY - SAFETY_STEP)
