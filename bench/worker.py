"""Subprocess entry of the bench's measurements that run in a process of their own.

- `python -m bench.worker replay PREFIX [PREFIX ...]` (row 6): replays each data set's three topics
  (``PREFIX`` + ``ido.grants.v1`` etc.) in turn (smallest history first), with that prefix as the settings'
  ``IDO_TOPIC_PREFIX`` (the seals' check names topics without it: under another prefix every message
  would be refused as unproven, and nothing applied), and prints, as one JSON list, the peak RSS after each replay: the
  process's own (VmHWM) plus its checker process's (the replay checks messages in a forked second process,
  services/audit/checks.py), so that row 6 counts both: a sum of peaks, never less than the two held at once.
- `python -m bench.worker {relay,raw-produce,project,raw-consume} '<JSON arguments>'` (rows 2, 3 and 7,
  bench/own_process.py): one timed run, its figures printed as one JSON object.

Either way the settings are the row's place, read from the environment.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.replay import replay_to_balances
from contracts.topics import BRIDGE, EXPENDITURES, GRANTS
from services.common.config import Settings, load_settings


def _status_mib(field: str) -> float:
    """One of /proc/self/status's sizes (``VmHWM``, ``VmRSS``: KiB there) in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return _status_mib("VmHWM")


def children_peak_rss_mb() -> float:
    """The largest peak RSS of the child processes ended so far (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def replay(prefixes: list[str]) -> list[dict[str, Any]]:
    found = []
    for prefix in prefixes:
        settings = load_settings({**os.environ, "IDO_TOPIC_PREFIX": prefix})
        started = time.perf_counter()
        result = replay_to_balances(settings, [prefix + spec.name for spec in (GRANTS, BRIDGE, EXPENDITURES)])
        found.append({
            "events": result.events, "balances": result.balances, "implementation": result.implementation,
            "applied": result.detail["applied"], "invalid": result.chain_breaks,
            "seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb() + children_peak_rss_mb(),
            "replay_peak_rss_mb": peak_rss_mb(), "checker_peak_rss_mb": children_peak_rss_mb(),
        })
    return found


# bench.rows is imported only by the timed runs: row 6's replay process measures its own peak RSS.


def relay(settings: Settings, expected: int, sealed: bool) -> dict[str, Any]:
    from bench.rows import CpuTally, time_relay_here

    cpu = CpuTally()
    seconds = time_relay_here(settings, expected, sealed=sealed, cpu=cpu)
    return {"seconds": seconds, "this_s": cpu.this_s, "child_s": cpu.child_s, "broker_s": cpu.broker_s}


def raw_produce(settings: Settings, topic: str) -> dict[str, Any]:
    from bench.rows import raw_produce_here

    return raw_produce_here(settings, topic)


def project(settings: Settings, expected: int, checked: bool) -> dict[str, Any]:
    from bench.rows import time_projection_here

    seconds, stats = time_projection_here(settings, expected, checked=checked)
    return {"seconds": seconds, "stats": stats}


def raw_consume(settings: Settings, topics: list[str], expected: int) -> dict[str, Any]:
    from bench.rows import raw_consume_here

    return raw_consume_here(settings, topics, expected)


TIMED: dict[str, Callable[..., dict[str, Any]]] = {
    "relay": relay, "raw-produce": raw_produce, "project": project, "raw-consume": raw_consume,
}
USAGE = ("usage: python -m bench.worker replay PREFIX [PREFIX ...]\n"
         f"       python -m bench.worker {{{','.join(TIMED)}}} '<JSON arguments>'")


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[0] == "replay":
        print(json.dumps(replay(argv[1:])))
    elif len(argv) == 2 and argv[0] in TIMED:
        process = {"pid": os.getpid(), "rss_mib_at_start": round(_status_mib("VmRSS"), 1)}
        print(json.dumps({**TIMED[argv[0]](load_settings(), **json.loads(argv[1])), "own_process": process}))
    else:
        raise SystemExit(USAGE)


if __name__ == "__main__":
    main(sys.argv[1:])
