"""Issue 19, Must show 2: one broker's log directory deleted (a lost disk) and the broker restarted, under
postings paced at more than half of the write path's capacity, measured at the start of this run (the
harness, its stack and its checks: ``cluster_faults.py``).

The broker leading most partitions of the written topic is stopped, its log directory deleted and formatted
again with the cluster's id (scripts/kafka-cluster.sh wipe), and started: it copies every partition from the
other two until each has three copies in sync, and its new log directory holds a replica of every partition
again, with at least as much of the written topic as before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.resilience.cluster_faults import FaultRun, run_under_paced_load
from tests.resilience.figures import Figures
from tests.resilience.support import Processes
from tests.support.infra import PostgresInfo
from tests.support.kafka_cluster import OwnCluster

pytestmark = pytest.mark.slow

PARTITIONS = 3


def _log_bytes(run: FaultRun, node: int) -> dict[str, int | None]:
    """Bytes of the log segments the node holds, per partition of the stack's topics (None: no replica
    directory; a partition no posting's key hashes to is empty on every node)."""
    data = run.cluster.state_dir / f"node-{node}" / "data"
    return {f"{topic}-{p}": (sum(f.stat().st_size for f in (data / f"{topic}-{p}").glob("*.log"))
                             if (data / f"{topic}-{p}").is_dir() else None)
            for topic in run.topics for p in range(PARTITIONS)}


def _written_bytes(run: FaultRun, sizes: dict[str, int | None]) -> int:
    return sum(size or 0 for partition, size in sizes.items() if partition.startswith(run.written))


def _wipe_the_leader(run: FaultRun) -> None:
    victim = run.written_leader()
    before = _log_bytes(run, victim)
    assert _written_bytes(run, before) > 0, f"node {victim} held no log of {run.written} before the wipe: {before}"
    with run.fault("one Kafka broker's log directory deleted and the broker restarted (cluster)",
                   f"node {victim} wiped"):
        run.cluster.wipe_node(victim)
    # Three copies in sync (the window's end) with replication factor 3 include the wiped node; its disk shows it.
    after = _log_bytes(run, victim)
    missing = [partition for partition, size in after.items() if size is None]
    assert not missing, f"node {victim} has no replica of {missing} after it re-replicated"
    assert _written_bytes(run, after) >= _written_bytes(run, before), (
        f"node {victim} holds less of {run.written} than before the wipe: {before} -> {after}")


def test_one_brokers_log_directory_deleted_under_half_the_capacity(
    procs: Processes, database: PostgresInfo, cluster: OwnCluster, tmp_path: Path, figures: Figures
) -> None:
    run_under_paced_load(procs, database, cluster, tmp_path, figures, test="one broker's log directory deleted",
                         inject=_wipe_the_leader, faults=1)
