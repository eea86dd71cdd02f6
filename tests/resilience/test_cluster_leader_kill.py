"""Issue 19, Must show 2 (first fault): the leader of the partitions being written is SIGKILLed, twice,
under postings paced at more than half of the write path's capacity, measured at the start of this run
(the harness, its stack and its checks: ``cluster_faults.py``).

Twice, the broker leading most partitions of the expenditures topic (the one the postings go to) is killed
with SIGKILL, kept down ``LEADER_DOWN_S`` seconds (``cluster_fault_kinds.py``) while the other two lead, and
started again on its data until every partition has three copies in sync.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.resilience.cluster_fault_kinds import kill_the_leader
from tests.resilience.cluster_faults import run_under_paced_load
from tests.resilience.figures import Figures
from tests.resilience.support import Processes
from tests.support.infra import PostgresInfo
from tests.support.kafka_cluster import OwnCluster

pytestmark = pytest.mark.slow

KILLS = 2


def test_leader_of_the_written_partitions_killed_twice_under_half_the_capacity(
    procs: Processes, database: PostgresInfo, cluster: OwnCluster, tmp_path: Path, figures: Figures
) -> None:
    run_under_paced_load(procs, database, cluster, tmp_path, figures, test="leader of the written partitions "
                         "SIGKILLed twice", inject=lambda run: kill_the_leader(run, KILLS), faults=KILLS)
