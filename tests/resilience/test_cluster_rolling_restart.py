"""Issue 19, Must show 2: a rolling restart of the three brokers under postings paced at more than half of the
write path's capacity, measured at the start of this run (the harness, its stack and its checks:
``cluster_faults.py``).

One broker at a time is stopped gracefully (SIGTERM: it hands its leaderships over), started again on its
data, and the next waits until every partition has three copies in sync, as an operator upgrading the
cluster would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.resilience.cluster_fault_kinds import restart_one_at_a_time
from tests.resilience.cluster_faults import run_under_paced_load
from tests.resilience.figures import Figures
from tests.resilience.support import Processes
from tests.support.infra import PostgresInfo
from tests.support.kafka_cluster import NODES, OwnCluster

pytestmark = pytest.mark.slow


def test_rolling_restart_of_the_three_brokers_under_half_the_capacity(
    procs: Processes, database: PostgresInfo, cluster: OwnCluster, tmp_path: Path, figures: Figures
) -> None:
    run_under_paced_load(procs, database, cluster, tmp_path, figures, test="rolling restart of the three brokers",
                         inject=restart_one_at_a_time, faults=len(NODES))
