"""The page-at-a-time shortcuts on the event stream's hot path decide exactly what the
row-by-row code decides: `Cursor.accept_all` versus `Cursor.filter`, `keys_present` versus
`rejects.check`, `walks._oldest` versus tracking row by row, `Batch.add` of a whole page; and
pages read ahead for the next run come back exactly as they were."""

from __future__ import annotations

import copy
import pickle
import random
from typing import Any

import pytest

from growthos_source import rejects
from growthos_source.endpoints import ENDPOINTS
from growthos_source.incremental import Cursor, uniform_ms
from growthos_source.page_batch import Batch
from growthos_source.prefetch_chunks import pack, unpack
from growthos_source.walks import _oldest

EVENTS = next(ep for ep in ENDPOINTS if ep.table == "events")


def _stamp(rng: random.Random) -> str:
    return f"2026-03-{rng.randint(1, 3):02d}T10:00:{rng.randint(0, 3):02d}.{rng.randint(0, 2):03d}Z"


@pytest.mark.parametrize(("values", "expected"), [
    (["2026-02-20T14:22:00.123Z", "2026-02-20T14:22:00.000Z"], True),
    (["2026-02-20T14:22:00Z"], False),  # no milliseconds: ts_key's other shape
    (["2026-02-20T14:22:00.123456Z"], False),
    (["2026-02-20T14:22:00.123+00:00"], False),
    (["2026-02-20T14:22:00.123Z", None], False),
    (["2026-02-20T14:22:00.123Z", 1771597320], False),
    (["2026-02-20T14:22:00.12", "3Z2026-02-20T14:22:00.123Z"], False),  # joined they'd match
    (["２026-02-20T14:22:00.123Z"], False),  # a full-width digit is not an ASCII digit
    (["2026-02-20 14:22:00.123Z"], False),
])
def test_uniform_ms(values: list[Any], expected: bool) -> None:
    assert uniform_ms(values) is expected


@pytest.mark.parametrize("seed", range(40))
def test_accept_all_agrees_with_filter(seed: int) -> None:
    rng = random.Random(seed)
    saved: dict[str, Any] = {}
    if rng.random() < 0.5:
        saved["k"] = [_stamp(rng)[:23] + "000Z", [f"e{rng.randint(0, 9)}"]]
    start = rng.choice([None, "2026-03-01T10:00:01.000Z", "2026-03-02T00:00:00Z"])
    end = rng.choice([None, "2026-03-03T10:00:02.001Z", "2026-03-04T00:00:00Z"])
    fast = Cursor(copy.deepcopy(saved), "k", "timestamp", start, end)
    slow = Cursor(copy.deepcopy(saved), "k", "timestamp", start, end)
    for _ in range(5):
        page = [{"id": f"e{rng.randint(0, 9)}", "timestamp": _stamp(rng)}
                for _ in range(rng.randint(1, 6))]
        before = (fast.max, set(fast.max_ids))
        accepted = slow.filter(page)
        if fast.accept_all(page):
            assert accepted == page
        else:
            assert (fast.max, fast.max_ids) == before  # a refusal changes nothing
            assert fast.filter(page) == accepted
        assert (fast.max, fast.max_ids) == (slow.max, slow.max_ids)


def test_accept_all_refuses_pages_it_cannot_judge_at_once() -> None:
    cur = Cursor({"k": ["2026-03-01T10:00:00.000000Z", ["a"]]}, "k", "timestamp")
    assert not cur.accept_all([])
    assert not cur.accept_all([{"id": "b", "timestamp": "2026-03-01T10:00:00Z"}])  # shape
    # at the saved mark: a row-by-row question (is the id among those seen at the mark?)
    assert not cur.accept_all([{"id": "b", "timestamp": "2026-03-01T10:00:00.000Z"}])
    assert cur.filter([{"id": "b", "timestamp": "2026-03-01T10:00:00.000Z"}])
    assert cur.accept_all([{"id": "c", "timestamp": "2026-03-01T10:00:00.001Z"}])
    assert (cur.max, cur.max_ids) == ("2026-03-01T10:00:00.001000Z", {"c"})


@pytest.mark.parametrize(("rows", "expected"), [
    ([{"id": "a"}, {"id": "b"}], True),
    ([{"id": "a"}, {"id": None}], False),
    ([{"id": "a"}, {"id": ""}], False),
    ([{"id": "a"}, {"name": "no id"}], False),
    ([{"id": "a"}, ["not", "an", "object"]], False),
    ([{"id": "a"}, "text"], False),
    ([], True),
])
def test_keys_present_agrees_with_check(rows: list[Any], expected: bool) -> None:
    assert rejects.keys_present(EVENTS, rows) is expected
    stamped = [dict(r, timestamp="2026-03-01T10:00:00.000Z") if isinstance(r, dict) else r
               for r in rows]
    _, bad = rejects.check(EVENTS, stamped, "2026-03-05T00:00:00Z")
    assert (not bad) is expected


def _oldest_row_by_row(rows: list[dict[str, Any]], oldest: str | None,
                       at: set[Any]) -> tuple[str | None, set[Any]]:
    at = set(at)
    for r in rows:
        ts = r.get("timestamp")
        if ts != oldest:
            oldest, at = ts, set()
        at.add(r.get("id"))
    return oldest, at


@pytest.mark.parametrize("seed", range(40))
def test_oldest_agrees_with_row_by_row(seed: int) -> None:
    rng = random.Random(seed)
    fast: tuple[str | None, set[Any]] = (None, set())
    slow: tuple[str | None, set[Any]] = (None, set())
    for _ in range(6):
        # newest first, with long runs of one instant that span pages
        page = sorted(({"id": f"e{rng.randint(0, 99)}",
                        "timestamp": f"2026-03-01T10:00:0{rng.randint(0, 2)}.000Z"}
                       for _ in range(rng.randint(0, 5))),
                      key=lambda r: r["timestamp"], reverse=True)
        if rng.random() < 0.2:
            rng.shuffle(page)  # a server that breaks its order is tracked the same way
        fast = _oldest([r["timestamp"] for r in page], [r["id"] for r in page], *fast)
        slow = _oldest_row_by_row(page, *slow)
        assert fast == slow


def test_batch_add_of_whole_and_partial_pages() -> None:
    page = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    batch = Batch()
    batch.add(list(page), b"body1", page)
    batch.add([page[0], page[2]], b"body2", page)
    assert batch.mask == [True, True, True, True, False, True]
    assert batch.bodies == [b"body1", b"body2"]
    batch.add([{"id": "a"}], b"body3", page)  # equal but not the page's own row
    assert batch.bodies is None and len(batch) == 6


def test_read_ahead_pages_are_packed_small_and_come_back_exact() -> None:
    rows = [{"id": f"evt_{i}", "timestamp": "2026-03-01T10:00:00.000Z", "type": "track",
             "properties": {"amount": i * 1.5, "items": [1, None, "x"], "flag": i % 2 == 0},
             "context": {"ip": "10.0.0.1", "page": {"url": "https://example.com/" + "α" * 3}}}
            for i in range(100)]
    packed = pack(rows)
    assert unpack(packed) == rows
    assert len(packed) * 2 < len(pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))
