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

from tests.resilience.cluster_faults import FaultRun, run_under_paced_load
from tests.resilience.figures import Figures
from tests.resilience.support import Processes, wait_for
from tests.support.infra import PostgresInfo
from tests.support.kafka_cluster import OwnCluster

pytestmark = pytest.mark.slow

ELECTION_TIMEOUT_S = 60


def _other_leader(run: FaultRun, old: int) -> int:
    try:
        leader = run.cluster.quorum_leader()
    except AssertionError:  # no node's log names a leader yet: asked again
        return 0
    return leader if leader != old else 0


def _stop_the_quorum_leader(run: FaultRun) -> None:
    old = run.cluster.quorum_leader()
    with run.fault("the Kafka controller quorum's leader stopped (cluster)", f"quorum leader node {old} stopped"):
        run.cluster.stop_node(old)
        new = wait_for(lambda: _other_leader(run, old), ELECTION_TIMEOUT_S, f"a quorum leader other than node {old}")
        assert new != old
        accepted_before = run.accepted_ids()
        wait_for(lambda: (run.accepted_ids() - accepted_before) & run.view_applied(), ELECTION_TIMEOUT_S,
                 f"a posting accepted under quorum leader {new} to reach the view")
        run.cluster.start_node(old)


def test_controller_quorum_losing_its_leader_under_half_the_capacity(
    procs: Processes, database: PostgresInfo, cluster: OwnCluster, tmp_path: Path, figures: Figures
) -> None:
    run_under_paced_load(procs, database, cluster, tmp_path, figures, test="controller quorum leader lost",
                         inject=_stop_the_quorum_leader, faults=1)
