"""The soak's figures (issue 19, Must show 4): what ``soak.py`` measured and judged, kept as JSON
(``var/soak/figures.json``) and rendered into ``tests/resilience/SOAK.md``, next to the resilience figures."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.resilience.render_figures import replace_section
from tests.resilience.support import REPO

FIGURES_JSON = REPO / "var" / "soak" / "figures.json"
SOAK_MD = REPO / "tests" / "resilience" / "SOAK.md"
START = "<!-- soak:start -->"
END = "<!-- soak:end -->"
MIB = 2**20


@dataclass
class Check:
    """One check, at a minute of the load or at its end."""

    label: str
    at_s: float
    """Seconds since the paced load started."""
    accepted: int
    lost: int
    doubled: int
    waited_s: float
    """How long the events accepted by then took to be all applied by the view (bounded)."""
    rss_ratio_max: float
    """The largest RSS / RSS after warm-up of any process (1.0 at the warm-up's end)."""
    rss_ratio_process: str
    fds: int
    threads: int
    """Open files and threads of all processes together (each is judged on its own)."""
    cluster_rss_mib: int
    problems: list[str] = field(default_factory=list)


@dataclass
class Fault:
    kind: str
    label: str
    started_s: float
    in_sync_s: float
    """Seconds since the paced load started: when it began and when every partition had three copies in sync."""
    lag_recovered_s: float | None
    """Seconds from in sync to the first sample with every lag under 1 s (None: not within the bound)."""
    problems: list[str] = field(default_factory=list)


@dataclass
class SoakFigures:
    seed: int
    minutes: float
    started_at: str
    finished_at: str = ""
    capacity_per_s: float = 0.0
    fill_per_s: dict[str, float] = field(default_factory=dict)
    """Each service's closed-loop burst of its own writes (16 clients, 5 s) that starts its threads."""
    target_per_s: float = 0.0
    achieved_per_s: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    baseline: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per process: rss_mib after warm-up, and the fewest and the most fds and threads seen during it."""
    peak: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per process: the most rss_mib, fds and threads seen after warm-up."""
    cluster_rss_max_mib: int = 0
    faults: list[Fault] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    end: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Every check that failed, in the order found; empty: the soak passed."""

    @property
    def passed(self) -> bool:
        return not self.problems

    def write(self, path: Path = FIGURES_JSON) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path


def render(figures: dict[str, Any]) -> str:
    passed = not figures["problems"]
    lines = [
        f"Last soak: {figures['started_at']} to {figures['finished_at']} (UTC), "
        f"**{'passed' if passed else 'FAILED'}**; "
        f"seed `{figures['seed']}` (`make soak SOAK_SEED={figures['seed']} SOAK_MINUTES={figures['minutes']:g}` "
        f"draws the same faults), {figures['minutes']:g} minutes of load.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| capacity (closed-loop burst of the mix) | {figures['capacity_per_s']} writes/s |",
        f"| each service alone (the bursts that start its threads) | {_inline(figures['fill_per_s'])} writes/s |",
        f"| paced at | {figures['target_per_s']} writes/s |",
        f"| achieved (201 per second, by service) | {_inline(figures['achieved_per_s'])} |",
        f"| requests (by status) | {figures['requests']} ({_inline(figures['by_status'])}) |",
        f"| faults injected | {len(figures['faults'])} |",
        f"| the three brokers' RSS, most seen | {figures['cluster_rss_max_mib']} MiB (at most 3072) |",
        f"| end: events checked, lost, doubled | {figures['end'].get('expected', '-')}, "
        f"**{figures['end'].get('lost', '-')}**, **{figures['end'].get('doubled', '-')}** |",
        f"| end: view = replay from offset 0 | {figures['end'].get('view_equals_replay', '-')} |",
        f"| samples that failed (a process ending while read) | {figures['end'].get('samples_failed', '-')} |",
        "",
        "Faults (seconds since the paced load started; lag back: from three copies in sync to every relay and the "
        "projector under 1 s behind, at most 30 s):",
        "",
        "| fault | started s | in sync s | lag back after s | problems |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {f['label']} ({f['kind']}) | {f['started_s']} | {f['in_sync_s']} | "
              f"{'-' if f['lag_recovered_s'] is None else f['lag_recovered_s']} | {'; '.join(f['problems']) or '-'} |"
              for f in figures["faults"]] or ["| (none) | | | | |"]
    lines += ["", "Checks, every minute and at the end (RSS: the largest ratio to the value after warm-up, of any "
              "process; fds and threads: of all processes together, each process judged against its own warm-up):",
              "", "| check | at s | accepted | lost | doubled | all applied after s | RSS ratio (process) | fds | "
              "threads | brokers' RSS MiB | problems |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c['label']} | {c['at_s']} | {c['accepted']} | {c['lost']} | {c['doubled']} | {c['waited_s']} | "
              f"{_ratio(c)} | {c['fds']} | {c['threads']} | "
              f"{c['cluster_rss_mib']} | {'; '.join(c['problems'][:5]) or '-'} |" for c in figures["checks"]]
    lines += ["", "Processes (after warm-up: RSS at its end, and the fewest to the most open files and threads during "
              "it; peak: the most seen after it):", "",
              "| process | RSS MiB | peak RSS MiB | fds | peak fds | threads | peak threads |",
              "|---|---|---|---|---|---|---|"]
    for name, base in sorted(figures["baseline"].items()):
        peak = figures["peak"].get(name, {})
        lines.append(f"| {name} | {base['rss_mib']} | {peak.get('rss_mib', '-')} | {base['fds_least']} to "
                     f"{base['fds']} | {peak.get('fds', '-')} | {base['threads_least']} to {base['threads']} | "
                     f"{peak.get('threads', '-')} |")
    if figures["problems"]:
        lines += ["", "Problems:", ""] + [f"- {problem}" for problem in figures["problems"][:40]]
    return "\n".join(lines)


def _ratio(check: dict[str, Any]) -> str:
    """The largest RSS ratio and its process; '-' before the warm-up's end (nothing to compare with yet)."""
    return "-" if check["rss_ratio_process"] == "-" else f"{check['rss_ratio_max']} ({check['rss_ratio_process']})"


def _inline(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in values.items()) or "-"


def write_markdown(figures_path: Path = FIGURES_JSON, markdown_path: Path = SOAK_MD) -> None:
    figures = json.loads(figures_path.read_text(encoding="utf-8"))
    replace_section(markdown_path, START, END, render(figures))
