"""Rejects are recorded once per record version, as valid JSON (issue 13, item 6)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import control, truth
from warehouse import Warehouse

from growthos_source.rejects import MAX_RECORD_CHARS, reject_row


def test_a_rejected_record_is_stored_once_however_many_runs_see_it(make_sim,
                                                                   tmp_path: Path) -> None:
    sim = make_sim(contacts=40, events=200)
    wh = Warehouse(tmp_path, sim)
    wh.sync(resources=("contacts", "events"))
    did = control(sim, "POST", "quirks", json={"kinds": ["null_required"], "count": 2}).json()
    for _ in range(3):  # every run walks the contacts again and sees the two rejects
        wh.sync(resources=("contacts", "events"))
    rows = wh.query("SELECT table_name, record_id, record FROM {ds}._growthos_rejects")
    assert sorted((t, i) for t, i, _ in rows) == sorted(
        [("contacts", i) for i in did["null_required"]["contacts"]]
        + [("events", i) for i in did["null_required"]["events"]])
    # the stored copy is the record the API sent, as JSON
    sent = {r["id"]: r for r in truth(sim, "contacts")}
    for table, rid, record in rows:
        if table == "contacts":
            assert json.loads(record) == sent[rid]


def test_a_new_version_of_a_rejected_record_is_a_new_row() -> None:
    a = reject_row("contacts", "c1", "why", {"id": "c1", "n": 1}, "2026-01-01T00:00:00.000Z")
    again = reject_row("contacts", "c1", "why", {"id": "c1", "n": 1}, "2026-01-02T00:00:00.000Z")
    b = reject_row("contacts", "c1", "why", {"id": "c1", "n": 2}, "2026-01-02T00:00:00.000Z")
    other = reject_row("events", "c1", "why", {"id": "c1", "n": 1}, "2026-01-02T00:00:00.000Z")
    assert a["reject_id"] == again["reject_id"]
    assert len({a["reject_id"], b["reject_id"], other["reject_id"]}) == 3


def test_large_records_are_stored_whole_and_oversized_ones_still_parse() -> None:
    big = {"id": "c1", "essay": "x" * 1_000_000}
    row = reject_row("contacts", "c1", "why", big, "2026-01-01T00:00:00.000Z")
    assert json.loads(row["record"]) == big
    huge = {"id": "c2", "essay": "é" * (MAX_RECORD_CHARS + 10)}
    cut = json.loads(reject_row("contacts", "c2", "why", huge, "x")["record"])
    assert cut["_truncated"] is True and cut["chars"] > MAX_RECORD_CHARS
    assert cut["head"].startswith('{"id":"c2","essay":"éé')
