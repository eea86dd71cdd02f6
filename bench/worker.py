"""Subprocess entry of row 6: `python -m bench.worker replay T1,T2,T3 [T1,T2,T3 ...]`.

Replays each comma-separated topic set in turn (smallest history first) and prints, as one JSON
list, the peak RSS after each replay: the process's own (VmHWM) plus its checker process's (the
replay checks messages in a forked second process, services/audit/checks.py), so that row 6 counts
both: a sum of peaks, never less than the two held at once.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from bench.replay import replay_to_balances
from services.common.config import load_settings


def peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def children_peak_rss_mb() -> float:
    """The largest peak RSS of the child processes ended so far (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] != "replay":
        raise SystemExit("usage: python -m bench.worker replay T1,T2,T3 [T1,T2,T3 ...]")
    settings = load_settings()
    found = []
    for topic_set in argv[1:]:
        started = time.perf_counter()
        result = replay_to_balances(settings, topic_set.split(","))
        found.append({
            "events": result.events, "balances": result.balances, "implementation": result.implementation,
            "seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb() + children_peak_rss_mb(),
            "replay_peak_rss_mb": peak_rss_mb(), "checker_peak_rss_mb": children_peak_rss_mb(),
        })
    print(json.dumps(found))


if __name__ == "__main__":
    main(sys.argv[1:])
