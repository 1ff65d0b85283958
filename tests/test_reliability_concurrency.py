"""Concurrent change during a sync: the server mutates (POST /_sim/mutate from another thread)
while a sync pages through its lists.

What the API documents lets us guarantee for the sync that overlaps the changes: every record
that existed before the sync and did not change during it is in the warehouse with exactly its
values, there are no duplicate keys, and nothing is there that never existed. The next sync, with
the server quiet, converges exactly to the truth for every table.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from conftest import control, truth
from warehouse import CHECKS, Warehouse, assert_equals_truth, norm

# Tables whose records can change (or appear, or vanish) while the walk is under way.
WATCHED = ("contacts", "segments", "segment_memberships", "campaigns", "survey_responses",
           "waitlist_entries", "webhook_endpoints", "webhook_deliveries", "referral_links",
           "referral_conversions", "events")
BURST = {"advance": "5m", "contacts": {"create": 2, "update": 4, "delete": 1},
         "events": {"create": 15}, "survey_responses": {"create": 1},
         "segment_memberships": {"create": 2}, "campaigns": {"update": 1},
         "segments": {"update": 1}, "waitlist_entries": {"create": 1, "update": 1},
         "webhook_deliveries": {"create": 3}, "referral_links": {"create": 1},
         "referral_conversions": {"create": 1}}


def snapshot(sim: Any, table: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    keys, cols = CHECKS[table]
    return {tuple(norm(r.get(k)) for k in keys): tuple(norm(r.get(c)) for c in cols)
            for r in truth(sim, table, include_deleted=True)}


class Mutator(threading.Thread):
    """POSTs bursts of activity to /_sim/mutate until stopped."""

    def __init__(self, sim: Any) -> None:
        super().__init__(daemon=True)
        self.sim, self.stop, self.bursts, self.error = sim, threading.Event(), 0, None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                control(self.sim, "POST", "mutate", json=BURST).raise_for_status()
                self.bursts += 1
                time.sleep(0.03)
        except Exception as exc:  # noqa: BLE001 - any failure is reported by the test
            self.error = exc


def test_sync_during_changes_is_a_consistent_copy_and_the_next_sync_converges(
        make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=250, events=2000)
    wh = Warehouse(tmp_path, sim)
    before = {t: snapshot(sim, t) for t in WATCHED}
    # Slow pages, small pages: the walks take a few seconds and overlap many bursts.
    control(sim, "PUT", "faults", json={"latency_ms": 8}).raise_for_status()
    mutator = Mutator(sim)
    mutator.start()
    try:
        wh.sync(resources=tuple(CHECKS), page_size=20, workers=2)
    finally:
        mutator.stop.set()
        mutator.join(timeout=60)
    assert mutator.error is None, mutator.error
    assert mutator.bursts >= 5, f"only {mutator.bursts} bursts overlapped the sync"
    after = {t: snapshot(sim, t) for t in WATCHED}
    live_after = {t: {tuple(norm(r.get(k)) for k in CHECKS[t][0]) for r in truth(sim, t)}
                  for t in WATCHED}

    for table in WATCHED:
        keys, cols = CHECKS[table]
        got = wh.rows(table, keys + cols)
        got_keys = [g[:len(keys)] for g in got]
        assert len(got_keys) == len(set(got_keys)), f"{table}: duplicate keys"
        rows = {g[:len(keys)]: g[len(keys):] for g in got}
        # Unchanged during the sync (same values before and after, still live): present, exact.
        stable = {k: v for k, v in before[table].items()
                  if after[table].get(k) == v and k in live_after[table]}
        missing = [k for k in stable if k not in rows]
        wrong = [k for k, v in stable.items() if k in rows and rows[k] != v]
        assert not missing, f"{table}: {len(missing)} unchanged records missing, e.g. {missing[:3]}"
        assert not wrong, f"{table}: {len(wrong)} unchanged records differ, e.g. {wrong[:3]}"
        # Nothing that never existed.
        ghosts = set(rows) - set(before[table]) - set(after[table])
        assert not ghosts, f"{table}: rows that never existed: {sorted(ghosts)[:3]}"

    # The server is quiet again: the next sync converges exactly, for every table.
    control(sim, "PUT", "faults", json={}).raise_for_status()
    wh.sync(resources=tuple(CHECKS), page_size=20)
    for table in CHECKS:
        assert_equals_truth(wh, table)
