"""Unit tests of the reconciliation's day arithmetic (reconcile.py): buckets, days in the
project's zone, and the windows re-attribution re-reads."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from growthos_source import instants, reconcile

UTC = dt.timezone.utc


def test_buckets_sum_into_utc_or_local_days() -> None:
    stamps = ["2026-03-28T22:30:00.000Z", "2026-03-28T23:10:00.000Z",
              "2026-03-29T21:59:59.999Z", "2026-03-29T22:00:00.000Z"]
    buckets = reconcile.buckets_from_minutes(reconcile.minute_counts(stamps))
    assert sum(buckets.values()) == 4
    assert reconcile.days_of(buckets, UTC) == Counter({"2026-03-28": 2, "2026-03-29": 2})
    # Berlin: UTC+1 until 2026-03-29 01:00 UTC, then UTC+2 (summer time).
    berlin = reconcile.zone("Europe/Berlin")
    assert reconcile.days_of(buckets, berlin) == Counter(
        {"2026-03-28": 1, "2026-03-29": 2, "2026-03-30": 1})
    # The API's local-day counts then differ on fewer days in that zone than in UTC.
    api = {"2026-03-28": 1, "2026-03-29": 2, "2026-03-30": 1}
    assert reconcile.differing(api, reconcile.days_of(buckets, berlin)) == []
    assert reconcile.differing(api, reconcile.days_of(buckets, UTC)) == ["2026-03-30",
                                                                          "2026-03-28"]


def test_local_day_bounds_follow_daylight_saving() -> None:
    berlin = reconcile.zone("Europe/Berlin")
    lo, hi = reconcile.day_bounds("2026-03-29", berlin)  # a 23-hour day
    assert lo == dt.datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert hi == dt.datetime(2026, 3, 29, 22, tzinfo=UTC)
    assert reconcile.day_bounds("2026-03-29", UTC)[1] - reconcile.day_bounds(
        "2026-03-29", UTC)[0] == dt.timedelta(days=1)
    assert reconcile.zone("Not/AZone") is UTC and reconcile.zone(None) is UTC


def test_instants_share_a_window_only_within_a_pages_reach() -> None:
    stamps = ["2026-01-01T00:00:00.000Z", "2026-01-01T00:30:00.000Z",
              "2026-01-01T00:59:00.250Z", "2026-01-01T05:00:00.000Z"]
    wins = instants.instant_windows(stamps, dt.timedelta(hours=1))
    ms, sec = dt.timedelta(milliseconds=1), dt.timedelta(seconds=1)
    # A value without a fraction covers its whole second (test_walks_unit.py), others their ms.
    assert wins == [(dt.datetime(2026, 1, 1, tzinfo=UTC),
                     dt.datetime(2026, 1, 1, 0, 59, 0, 250_000, tzinfo=UTC) + ms),
                    (dt.datetime(2026, 1, 1, 5, tzinfo=UTC),
                     dt.datetime(2026, 1, 1, 5, tzinfo=UTC) + sec)]
    assert reconcile.query_requests(dt.date(2024, 1, 1), dt.date(2024, 12, 31)) == 1
    assert reconcile.query_requests(dt.date(2024, 1, 1), dt.date(2025, 1, 1)) == 2


def test_probes_of_vanished_contacts_share_windows_and_cover_every_contact() -> None:
    """A probe needs one event of each vanished contact: contacts with events close together
    share a window, every contact has an event in some window, and windows are disjoint."""
    stamps = {
        "a": ["2026-01-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z"],
        "b": ["2026-01-01T00:20:00.000Z"],
        "c": ["2026-02-01T00:00:00.000Z", "2026-03-01T00:10:00.000Z"],
        "d": ["2026-03-01T00:30:00.250Z"],
        "e": ["2026-06-01T00:00:00.000Z"],
        "none": [],
    }
    wins = instants.covering_windows(stamps, dt.timedelta(hours=1))
    assert wins == [(dt.datetime(2026, 1, 1, 0, 20, tzinfo=UTC),
                     dt.datetime(2026, 1, 1, 0, 20, 1, tzinfo=UTC)),
                    (dt.datetime(2026, 3, 1, tzinfo=UTC),
                     dt.datetime(2026, 3, 1, 0, 30, 0, 251_000, tzinfo=UTC)),
                    (dt.datetime(2026, 6, 1, tzinfo=UTC), dt.datetime(2026, 6, 1, 0, 0, 1,
                                                                      tzinfo=UTC))]
    for key, ss in stamps.items():
        if ss:
            assert any(lo <= reconcile_ts(s) < hi for s in ss for lo, hi in wins), key
    # A zero span still probes every contact, one window per instant.
    assert len(instants.covering_windows({"x": ["2026-01-01T00:00:00.000Z"],
                                          "y": ["2026-01-02T00:00:00.000Z"]},
                                         dt.timedelta(0))) == 2


def reconcile_ts(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
