"""Issue 19, Must show 2: the controller quorum loses one node, under postings paced at more than half of the
write path's capacity, measured at the start of this run (the harness, its stack and its checks:
``cluster_faults.py``).

The quorum's leader (each node is broker and controller) is stopped; the other two elect a new leader and
postings accepted after the stop reach the view (writes go on); then it is started again on its data until
every partition has three copies in sync.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.resilience.cluster_fault_kinds import stop_the_quorum_leader
from tests.resilience.cluster_faults import run_under_paced_load
from tests.resilience.figures import Figures
from tests.resilience.support import Processes
from tests.support.infra import PostgresInfo
from tests.support.kafka_cluster import OwnCluster

pytestmark = pytest.mark.slow


def test_controller_quorum_losing_its_leader_under_half_the_capacity(
    procs: Processes, database: PostgresInfo, cluster: OwnCluster, tmp_path: Path, figures: Figures
) -> None:
    run_under_paced_load(procs, database, cluster, tmp_path, figures, test="controller quorum leader lost",
                         inject=stop_the_quorum_leader, faults=1)
