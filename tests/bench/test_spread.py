"""bench/spread.py: the median and spread of each row's figure across runs."""

from __future__ import annotations

from bench.spread import spread_table


def _run(ratio: float, p99_ms: float) -> dict[str, object]:
    return {"rows": [
        {"row": "1 write", "store": "sqlite", "ratio": ratio, "figures": {}},
        {"row": "5 end to end", "store": "sqlite", "ratio": None, "figures": {"p99_ms": p99_ms}},
    ]}


def test_each_rows_median_and_spread_across_runs() -> None:
    lines = spread_table([_run(0.9, 40.0), _run(1.1, 60.0), _run(1.0, 50.0)])
    assert lines[2] == "| 1 write | sqlite | ratio | 0.90 | 1.10 | 1.00 | 1.00 | 20% |"
    assert lines[3] == "| 5 end to end | sqlite | p99 ms | 40.00 | 60.00 | 50.00 | 50.00 | 40% |"


def test_a_row_missing_from_a_run_is_shown_as_missing() -> None:
    runs = [_run(1.0, 50.0), {"rows": [{"row": "5 end to end", "store": "sqlite", "figures": {"p99_ms": 70.0}}]}]
    assert spread_table(runs)[2] == "| 1 write | sqlite | ratio | 1.00 | — | 1.00 | 0% |"
