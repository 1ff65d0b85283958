"""One table failing does not lose the others (issue 13, items 5 and 7): every other table
loads and commits, the run ends with one line naming the failed tables, every missing scope at
once and the fix, and the next run retries them."""

from __future__ import annotations

from pathlib import Path

import pytest
from warehouse import Warehouse, assert_equals_truth

from growthos_source import sync
from growthos_source.cli_errors import one_line
from growthos_source.isolation import TablesFailedError

LIMITED = ["contacts:read", "segments:read", "surveys:read"]


def test_missing_scopes_fail_only_their_tables_and_are_named_at_once(make_sim,
                                                                     tmp_path: Path) -> None:
    sim = make_sim(contacts=40, events=200, keys={"gos_sk_limited": LIMITED,
                                                  "gos_sk_test_local": ["*"]})
    wh = Warehouse(tmp_path, sim)
    tables = ("contacts", "events", "campaigns", "campaign_stats", "surveys")
    with pytest.raises(TablesFailedError) as err:
        sync(wh.pipeline, lambda **kw: wh.source(key="gos_sk_limited", **kw)
             .with_resources(*tables))
    line = one_line(err.value)
    assert "\n" not in line
    assert set(err.value.tables) == {"events", "campaigns", "campaign_stats"}
    for words in ("events:read (events)", "campaigns:read (campaigns, campaign_stats)",
                  "--resources", "on_missing_scope"):
        assert words in line, line
    assert "_campaigns_all" not in line and "deselect" not in line
    # the tables the key may read were loaded and committed
    assert_equals_truth(wh, "contacts")
    assert_equals_truth(wh, "surveys")
    assert {"events", "campaigns"}.isdisjoint(wh.tables())
    # the next run, with the scopes, loads the rest
    sync(wh.pipeline, lambda **kw: wh.source(**kw).with_resources(*tables))
    for table in tables:
        assert_equals_truth(wh, table)


def test_a_failing_table_is_retried_next_run_and_append_tables_never_load_twice(
        make_sim, tmp_path: Path) -> None:
    sim = make_sim(contacts=40, events=400)
    wh = Warehouse(tmp_path, sim)
    funnels = sim.info()["funnel_ids"]
    # A funnel that does not exist fails `funnels` (404) while events are being read.
    with pytest.raises(TablesFailedError) as err:
        wh.sync(resources=("events", "contacts", "funnels"),
                funnel_ids=[*funnels, "fnl_gone"])
    line = one_line(err.value)
    assert line.startswith("not loaded: funnels") and "fnl_gone" in line, line
    assert err.value.result.rows["events"] == 400
    assert_equals_truth(wh, "events")  # the first, failed attempt left nothing behind
    assert_equals_truth(wh, "contacts")
    again = wh.sync(resources=("events", "contacts", "funnels"))
    assert again.rows.get("events", 0) == 0
    assert_equals_truth(wh, "events")
    assert_equals_truth(wh, "funnels")
