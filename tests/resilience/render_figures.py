"""Renders the figures of a resilience run (JSON) into the README, between its figure markers.

    python -m tests.resilience.render_figures var/resilience/figures.json tests/resilience/README.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

START = "<!-- figures:start -->"
END = "<!-- figures:end -->"


def render(figures: dict[str, Any]) -> str:
    run, totals = figures["run"], figures["totals"]
    outcomes: dict[str, str] = run["outcomes"]
    counted: dict[str, int] = {}
    for outcome in outcomes.values():
        counted[outcome] = counted.get(outcome, 0) + 1
    lines = [
        f"Last run: {run['started_at']} to {run['finished_at']} (UTC), selection `{run['selection']}`"
        + (f", on {run['kafka']}" if "kafka" in run else "") + ": "
        + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counted.items())) + ".",
        "",
        "| figure | value |",
        "|---|---|",
        f"| load held | {totals['requests']} requests in {totals['load_seconds']} s of load "
        f"({_rate(totals['requests'], totals['load_seconds'])} requests/s) |",
        f"| faults injected | {totals['faults']} |",
        f"| inputs tried | {totals['inputs']} |",
        f"| events checked | {totals['events_checked']} |",
        f"| **events lost** | **{totals['events_lost']}** |",
        f"| **events doubled** | **{totals['events_doubled']}** |",
        "",
        "Load, per test:",
        "",
        "| test | requests | seconds | requests/s | details |",
        "|---|---|---|---|---|",
    ]
    for entry in figures["load"]:
        details = {k: v for k, v in entry.items() if k not in ("test", "requests", "seconds", "requests_per_s")}
        lines.append(
            f"| {entry['test']} | {entry['requests']} | {entry['seconds']} | {entry['requests_per_s']} | "
            f"{_details(details)} |"
        )
    lines += ["", "Faults injected:", "", "| fault | count |", "|---|---|"]
    lines += [f"| {kind} | {n} |" for kind, n in figures["faults"].items()] or ["| (none in this run) | 0 |"]
    lines += ["", "Inputs tried, by kind:", "", "| kind | count |", "|---|---|"]
    lines += [f"| {kind} | {n} |" for kind, n in figures["inputs"].items()] or ["| (none in this run) | 0 |"]
    under_load = figures.get("under_load") or []
    if under_load:
        lines += ["", "Faults on the cluster under load (capacity: postings/s of a closed-loop burst at the start of "
                  "the test; unavailable: the longest stretch with no posting answered 201; p99: from when a "
                  "posting was due to its answer, postings due during the fault):", "",
                  "| test | fault | capacity/s | target/s | achieved/s | requests | unavailable s | p99 ms |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {f['test']} | {f['fault']} | {f['capacity_per_s']} | {f['target_per_s']} | "
                  f"{f['achieved_per_s']} | {f['requests']} | {f['unavailable_s']} | {f['p99_ms']} |"
                  for f in under_load]
    lines += ["", "Events, per test:", "", "| test | events checked | lost | doubled |", "|---|---|---|---|"]
    lines += [f"| {e['test']} | {e['expected']} | {e['lost']} | {e['doubled']} |" for e in figures["events"]]
    not_passed = {test: outcome for test, outcome in outcomes.items() if outcome != "passed"}
    if not_passed:
        lines += ["", "Not passed in this run (an `xfailed` test waits for a fix named in its reason):", ""]
        lines += [f"- `{test}`: {outcome}" for test, outcome in sorted(not_passed.items())]
    return "\n".join(lines)


def _rate(requests: int, seconds: float) -> str:
    return f"{requests / seconds:.1f}" if seconds else "-"


def _details(details: dict[str, Any]) -> str:
    return "; ".join(f"{key}: {json.dumps(value, separators=(', ', ': '))}" for key, value in details.items())


def replace_section(path: Path, start: str, end: str, text: str) -> None:
    """Writes ``text`` between the markers ``start`` and ``end`` of the file, keeping the rest."""
    content = path.read_text(encoding="utf-8")
    if start not in content or end not in content:
        raise SystemExit(f"{path} has no {start} ... {end} section")
    head, rest = content.split(start, 1)
    _old, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}\n{end}{tail}", encoding="utf-8")


def main(argv: list[str]) -> None:
    figures_path, readme_path = Path(argv[0]), Path(argv[1])
    figures = json.loads(figures_path.read_text(encoding="utf-8"))
    replace_section(readme_path, START, END, render(figures))
    print(f"{readme_path}: figures of the run that finished {figures['run']['finished_at']}")


if __name__ == "__main__":
    main(sys.argv[1:])
