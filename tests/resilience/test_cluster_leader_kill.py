"""Issue 19, Must show 2 (first fault): the leader of the partitions being written is SIGKILLed, twice,
under postings paced at more than half of the write path's capacity, measured at the start of this run
(the harness, its stack and its checks: ``cluster_faults.py``).

Twice, the broker leading most partitions of the expenditures topic (the one the postings go to) is killed
with SIGKILL, kept down ``DOWN_S`` seconds while the other two lead, and started again on its data until
every partition has three copies in sync.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.resilience.cluster_faults import FaultRun, led_without, run_under_paced_load
from tests.resilience.figures import Figures
from tests.resilience.support import Processes, wait_for
from tests.support.infra import PostgresInfo
from tests.support.kafka_cluster import OwnCluster

pytestmark = pytest.mark.slow

KILLS = 2
DOWN_S = 10
"""How long a killed leader stays down (the load then runs on two brokers)."""


def _kill_the_leader_twice(run: FaultRun) -> None:
    for _ in range(KILLS):
        victim = run.written_leader()
        with run.fault("SIGKILL the Kafka leader of the written partitions (cluster)", f"node {victim} killed"):
            run.cluster.kill_node(victim)
            wait_for(lambda v=victim: led_without(run.cluster, [run.written], v), 60,
                     f"the leaders to move off node {victim}")
            run.hold(DOWN_S)  # the load runs on two brokers
            run.cluster.start_node(victim)


def test_leader_of_the_written_partitions_killed_twice_under_half_the_capacity(
    procs: Processes, database: PostgresInfo, cluster: OwnCluster, tmp_path: Path, figures: Figures
) -> None:
    run_under_paced_load(procs, database, cluster, tmp_path, figures, test="leader of the written partitions "
                         "SIGKILLed twice", inject=_kill_the_leader_twice, faults=KILLS)
