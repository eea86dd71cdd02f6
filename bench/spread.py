"""`python -m bench.spread A.json B.json C.json`: how much each row's figure moves across runs.

Issue 17 asks for the spread of three `make bench` runs beside the table of one. For every row and
store this prints the figure each run gave (the ratio to its reference for rows 1-4, the p99 for row
5, the growth for rows 6 and 7), their median, and the spread: (max - min) / median.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def figure_of(row: dict[str, Any]) -> float | None:
    figures = row.get("figures", {})
    if row.get("ratio") is not None:
        return float(row["ratio"])
    if row["row"].startswith("5"):
        return figures.get("p99_ms")
    if row["row"].startswith("6"):
        return max(figures.get("growth_projector") or 0, figures.get("growth_replay") or 0) or None
    if row["row"].startswith("7"):
        growth = figures.get("growth") or {}
        return max(growth.values()) if growth else None
    return None


def spread_table(runs: list[dict[str, Any]]) -> list[str]:
    keys: list[tuple[str, str]] = []
    values: dict[tuple[str, str], list[float | None]] = {}
    for number, run in enumerate(runs):
        for row in run["rows"]:
            key = (row["row"], row["store"])
            if key not in values:
                keys.append(key)
                values[key] = [None] * len(runs)
            values[key][number] = figure_of(row)
    lines = ["| row | store | figure | " + " | ".join(f"run {n + 1}" for n in range(len(runs)))
             + " | median | spread |", "|---|---|---|" + "---|" * (len(runs) + 2)]
    for key in keys:
        seen = [v for v in values[key] if v is not None]
        median = statistics.median(seen) if seen else None
        spread = (max(seen) - min(seen)) / median if seen and median else None
        kind = ("ratio" if key[0][0] in "1234" else "p99 ms" if key[0].startswith("5")
                else "last/first")
        cells = [_number(v) for v in values[key]]
        lines.append(
            f"| {key[0]} | {key[1]} | {kind} | " + " | ".join(cells)
            + f" | {_number(median)} | {'—' if spread is None else f'{spread:.0%}'} |"
        )
    return lines


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    runs = [json.loads(Path(name).read_text(encoding="utf-8")) for name in argv]
    print("\n".join(spread_table(runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
