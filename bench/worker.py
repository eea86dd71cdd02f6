"""Subprocess entry of row 6: `python -m bench.worker replay T1,T2,T3 [T1,T2,T3 ...]`.

Replays each comma-separated topic set in turn (smallest history first) and prints, as one JSON
list, the process's peak RSS (VmHWM) after each replay.
"""

from __future__ import annotations

import json
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
            "seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb(),
        })
    print(json.dumps(found))


if __name__ == "__main__":
    main(sys.argv[1:])
