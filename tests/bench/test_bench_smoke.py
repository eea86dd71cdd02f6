"""`make test` runs the benchmark once at a tiny size: the table and bench's JSON come out with every
row filled, for SQLite and for PostgreSQL. No speed is asserted (figures: bench/README.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.infra import KafkaInfo, PostgresInfo

REPO = Path(__file__).resolve().parents[2]
ROWS = (
    "1 write", "1 write off", "2 relay", "2 relay off", "3 projection", "3 projection off", "4 replay", "4 replay off",
    "5 end to end", "6 memory", "7 scale",
)
"""Rows 1-4 also run with provenance off (issue 13: each row "with them off" in the same run)."""
STORES = ("sqlite", "postgres")


def test_the_benchmark_runs_once_at_a_tiny_size(
    kafka: KafkaInfo, postgres_server: PostgresInfo, tmp_path: Path
) -> None:
    out = tmp_path / "results.json"
    env = {
        **os.environ,
        "BENCH_KAFKA_BOOTSTRAP": kafka.bootstrap_servers,
        "BENCH_KAFKA_CREDENTIALS_DIR": kafka.credentials_dir,
        "BENCH_POSTGRES_HOST": postgres_server.host,
        "BENCH_POSTGRES_PORT": str(postgres_server.port),
        "BENCH_POSTGRES_USER": postgres_server.user,
        "BENCH_POSTGRES_PASSWORD": postgres_server.password,
    }
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--out", str(out), "--work-dir", str(tmp_path / "work")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]

    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["failures"] == []
    found = {(row["row"], row["store"]): row for row in result["rows"]}
    assert sorted(found) == sorted((row, store) for row in ROWS for store in STORES)
    for (name, store), row in found.items():
        assert row["project"].strip() and row["reference"].strip() and row["target"].strip(), (name, store)
        assert isinstance(row["met"], bool)
        assert row["figures"], (name, store)
        if row["ratio"] is not None:
            assert row["ratio"] > 0, (name, store)
        if name == "2 relay":  # where the two cores went: the sender, its page worker, the broker, the reference
            figures = row["figures"]
            assert set(figures["cpu_us_per_event"]) == {"relay_sender", "relay_page_worker", "broker"}, store
            # this process's CPU is read in ns; another process's in clock ticks (a tiny run may take less than one)
            assert figures["cpu_us_per_event"]["relay_sender"] > 0, store
            assert figures["cpu_us_per_event"]["relay_page_worker"] >= 0, store
            assert figures["raw_producer_cpu_us_per_event"]["raw_producer"] > 0, store
        if name == "1 write":  # CRUD and the project timed three times each, in turn; the median run of each
            figures = row["figures"]
            assert len(figures["project_runs"]) == len(figures["crud_runs"]) == 3, store
            for side, runs in (("project", figures["project_runs"]), ("crud", figures["crud_runs"])):
                assert figures[side]["rps"] == sorted(run["rps"] for run in runs)[1], (side, store)
        if name in ("2 relay", "3 projection"):
            # each side of the ratio timed in a fresh process of its own, not in the bench's (bench/own_process.py)
            pids = [process["pid"] for process in row["figures"]["processes"].values()]
            assert len(pids) == 2 and len(set(pids)) == 2 and result["meta"]["pid"] not in pids, (name, store)
    meta = result["meta"]
    assert meta["machine"]["nproc"] and meta["machine"]["memory_gib"] and meta["commit"] and meta["date"]

    table = [line for line in completed.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(ROWS) * len(STORES)  # the header and one line per row and store
    for name, store in found:
        assert any(line.startswith(f"| {name} ") and f"| {store} " in line for line in table), (name, store)
