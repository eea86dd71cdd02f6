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

from tests.resilience.cluster_fault_kinds import wipe_the_leader
from tests.resilience.cluster_faults import run_under_paced_load
from tests.resilience.figures import Figures
from tests.resilience.support import Processes
from tests.support.infra import PostgresInfo
from tests.support.kafka_cluster import OwnCluster

pytestmark = pytest.mark.slow


def test_one_brokers_log_directory_deleted_under_half_the_capacity(
    procs: Processes, database: PostgresInfo, cluster: OwnCluster, tmp_path: Path, figures: Figures
) -> None:
    run_under_paced_load(procs, database, cluster, tmp_path, figures, test="one broker's log directory deleted",
                         inject=wipe_the_leader, faults=1)
