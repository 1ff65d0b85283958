"""Windows of the event stream that cover given instants: what a re-read for merged or renamed
contacts reads (rereads.py).

A re-read window costs a request however few events it holds, so instants within about a
page's reach share one; and each window must cover every instant the API may hold an event at
whose stored value is the instant (see `instant_end`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from .incremental import parse_ts

Range = tuple[dt.datetime, dt.datetime]


def instant_windows(stamps: Iterable[str], span: dt.timedelta,
                    ) -> list[Range]:
    """[lo, hi) windows covering every instant of `stamps` (see `instant_end`). An instant joins
    the previous window while the window stays shorter than `span` (the time that holds about
    a page of events): a window costs a request however few events it holds, so instants
    within a page's reach share one, and a window never grows past the page it costs."""
    points = sorted({parse_ts(s) for s in stamps})
    out: list[Range] = []
    for p in points:
        end = instant_end(p)
        if out and p - out[-1][0] < span:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((p, end))
    return out


def instant_end(p: dt.datetime) -> dt.datetime:
    """The exclusive end of the stretch of the stream an event stored at `p` may lie in.

    An API that sends whole seconds (the docs' examples) may hold the event anywhere in that
    second and filters `from`/`to` on what it holds: `[14:22:05.000, 14:22:05.001)` can miss
    an event shown as `14:22:05Z`. The warehouse keeps the value, not the precision it was
    sent at, so a value with no fraction covers its whole second (for an API sending
    milliseconds that only widens the re-read to the events of that second); any other value
    covers its millisecond."""
    if p.microsecond == 0:
        return p + dt.timedelta(seconds=1)
    return p.replace(microsecond=p.microsecond // 1000 * 1000) + dt.timedelta(milliseconds=1)


def covering_windows(stamps: Mapping[str, list[str]], span: dt.timedelta) -> list[Range]:
    """Few windows that hold at least one instant of every key of `stamps` (key -> instants),
    none longer than `span` unless windows overlap and are joined; sorted, disjoint.

    Greedy set cover: each round takes the window that starts at an instant and reaches
    `span` further holding the most keys not covered yet. A probe of a vanished contact needs
    any one of its events (a merge moves all of them), so contacts whose events lie close
    together share a request."""
    points = sorted((parse_ts(s), k) for k, ss in stamps.items() for s in ss)
    left = {k for k, ss in stamps.items() if ss}
    chosen: list[Range] = []
    while left:
        best: tuple[int, int, int] = (0, 0, 0)  # (keys covered, first, last point index)
        counts: dict[str, int] = {}
        j = 0
        for i, (p, _) in enumerate(points):
            while j < len(points) and (j <= i or points[j][0] - p < span):
                if points[j][1] in left:
                    counts[points[j][1]] = counts.get(points[j][1], 0) + 1
                j += 1
            if len(counts) > best[0]:
                best = (len(counts), i, j - 1)
            k = points[i][1]
            if k in counts:
                counts[k] -= 1
                if not counts[k]:
                    del counts[k]
        if not best[0]:
            break
        hit = [p for p, k in points[best[1]:best[2] + 1] if k in left]
        chosen.append((hit[0], instant_end(hit[-1])))
        left -= {k for _, k in points[best[1]:best[2] + 1]}
    out: list[Range] = []
    for lo, hi in sorted(chosen):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out
