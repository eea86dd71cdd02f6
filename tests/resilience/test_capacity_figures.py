"""The figures of a fault under paced load (capacity.py, render_figures.py): what a client saw, computed
from when each posting was due and answered. Fast: no process, no broker."""

from __future__ import annotations

from tests.resilience.capacity import Posted, window_figures
from tests.resilience.render_figures import render


def _steady(start_s: float, end_s: float, every_s: float, latency_s: float) -> list[Posted]:
    count = round((end_s - start_s) / every_s)
    return [Posted(start_s + i * every_s, start_s + i * every_s + latency_s, 201, 1) for i in range(count)]


def test_a_stall_counts_for_every_posting_due_during_it_and_as_unavailability() -> None:
    # 100 postings/s answered in 5 ms, except that nothing is answered from 10.0 s to 13.002 s: the postings
    # due then are answered from 13.002 s on (a stall, then a catch-up).
    before = _steady(0.0, 10.0, 0.01, 0.005)
    stalled = [Posted(10.0 + i * 0.01, 13.002 + i * 0.0001, 201, 2) for i in range(300)]
    after = _steady(13.0, 20.0, 0.01, 0.005)
    seen = window_figures([*before, *stalled, *after], 9.0, 15.0)
    assert seen.postings == 100 + 300 + 201  # due from 9.0 s to 15.0 s, both ends included
    assert seen.unavailable_s == 3.01  # the last answer before the stall at 9.995 s, the next at 13.002 s
    # The 99th percentile of 601 latencies is the 595th smallest: after the 301 of 5 ms, the 294th smallest of
    # the stalled ones, whose latencies are 3.002 - i * 0.0099 s: i = 6, 2.9426 s. A latency counted from the
    # request's own send would be about 5 ms for every posting.
    assert seen.p99_ms == 2942.6
    steady = window_figures(before, 2.0, 8.0)
    assert (steady.postings, steady.unavailable_s, steady.p99_ms) == (601, 0.01, 5.0)


def test_the_readme_shows_the_faults_under_load() -> None:
    figures = {
        "run": {"started_at": "2026-12-01T19:00:00+00:00", "finished_at": "2026-12-01T19:05:00+00:00",
                "selection": "all", "kafka": "a 3-broker cluster (replication factor 3, min.insync.replicas 2)",
                "outcomes": {"t": "passed"}},
        "totals": {"requests": 10, "load_seconds": 1.0, "faults": 1, "inputs": 0, "events_checked": 10,
                   "events_lost": 0, "events_doubled": 0},
        "load": [], "faults": {}, "inputs": {}, "events": [],
        "under_load": [{"test": "leader", "fault": "node 2 killed, 31.5 s to three in sync", "capacity_per_s": 300.0,
                        "target_per_s": 165.0, "achieved_per_s": 164.2, "requests": 5200, "unavailable_s": 0.4,
                        "p99_ms": 120.5}],
    }
    text = render(figures)
    assert "selection `all`, on a 3-broker cluster (replication factor 3, min.insync.replicas 2): 1 passed." in text
    assert "| leader | node 2 killed, 31.5 s to three in sync | 300.0 | 165.0 | 164.2 | 5200 | 0.4 | 120.5 |" in text
