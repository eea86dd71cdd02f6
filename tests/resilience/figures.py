"""The figures of a resilience run: load held, faults injected, inputs tried, events lost and doubled.

Tests add to one ``Figures`` per session; at the end of the session it is written as JSON to
``IDO_RESILIENCE_FIGURES`` (default ``var/resilience/figures.json``), and
``python -m tests.resilience.render_figures`` renders it into ``tests/resilience/README.md``.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.resilience.support import REPO

DEFAULT_PATH = REPO / "var" / "resilience" / "figures.json"


def kafka_described() -> str:
    """Which Kafka the suite ran on (scripts/test-servers.sh exports the cluster's replication)."""
    factor = os.environ.get("TEST_KAFKA_REPLICATION_FACTOR") or "1"
    if factor == "1":
        return "the single broker"
    min_insync = os.environ.get("TEST_KAFKA_MIN_INSYNC_REPLICAS") or "1"
    nodes = len((os.environ.get("TEST_KAFKA_BOOTSTRAP") or "").split(","))
    return f"a {nodes}-broker cluster (replication factor {factor}, min.insync.replicas {min_insync})"


def figures_path() -> Path:
    return Path(os.environ.get("IDO_RESILIENCE_FIGURES") or DEFAULT_PATH)


class Figures:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.load: list[dict[str, Any]] = []
        self.faults: dict[str, int] = {}
        self.inputs: dict[str, int] = {}
        self.events: list[dict[str, Any]] = []
        self.outcomes: dict[str, str] = {}
        self.under_load: list[dict[str, Any]] = []
        """Faults on the cluster under paced load (issue 19, Must show 2): capacity, load, what clients saw."""
        self.started = datetime.now(UTC)

    def add_load(self, test: str, requests: int, seconds: float, **details: Any) -> None:
        with self.lock:
            self.load.append(
                {
                    "test": test,
                    "requests": requests,
                    "seconds": round(seconds, 1),
                    "requests_per_s": round(requests / seconds, 1) if seconds > 0 else None,
                    **details,
                }
            )

    def add_fault(self, kind: str, count: int = 1) -> None:
        with self.lock:
            self.faults[kind] = self.faults.get(kind, 0) + count

    def add_inputs(self, kind: str, count: int) -> None:
        with self.lock:
            self.inputs[kind] = self.inputs.get(kind, 0) + count

    def add_events(self, test: str, *, expected: int, lost: int, doubled: int, **details: Any) -> None:
        with self.lock:
            self.events.append({"test": test, "expected": expected, "lost": lost, "doubled": doubled, **details})

    def add_fault_under_load(self, test: str, fault: str, *, capacity_per_s: float, target_per_s: float,
                             achieved_per_s: float, requests: int, unavailable_s: float, p99_ms: float) -> None:
        """One fault injected under load paced at a share of the capacity measured at the start of the run."""
        with self.lock:
            self.under_load.append({
                "test": test, "fault": fault, "capacity_per_s": round(capacity_per_s, 1),
                "target_per_s": round(target_per_s, 1), "achieved_per_s": round(achieved_per_s, 1),
                "requests": requests, "unavailable_s": unavailable_s, "p99_ms": p99_ms,
            })

    def as_dict(self, selection: str) -> dict[str, Any]:
        requests = sum(entry["requests"] for entry in self.load)
        seconds = sum(entry["seconds"] for entry in self.load)
        return {
            "run": {
                "started_at": self.started.isoformat(timespec="seconds"),
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "selection": selection,
                "kafka": kafka_described(),
                "outcomes": dict(sorted(self.outcomes.items())),
            },
            "totals": {
                "requests": requests,
                "load_seconds": round(seconds, 1),
                "faults": sum(self.faults.values()),
                "inputs": sum(self.inputs.values()),
                "events_checked": sum(entry["expected"] for entry in self.events),
                "events_lost": sum(entry["lost"] for entry in self.events),
                "events_doubled": sum(entry["doubled"] for entry in self.events),
            },
            "load": self.load,
            "faults": dict(sorted(self.faults.items())),
            "inputs": dict(sorted(self.inputs.items())),
            "events": self.events,
            "under_load": self.under_load,
        }

    def write(self, selection: str) -> Path | None:
        if not (self.load or self.faults or self.inputs or self.events or self.under_load):
            return None
        path = figures_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(selection), indent=2) + "\n", encoding="utf-8")
        return path
