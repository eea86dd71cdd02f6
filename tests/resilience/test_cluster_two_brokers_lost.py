"""Issue 19, Must show 2: two of the three brokers lost under postings paced at more than half of the write
path's capacity, measured at the start of this run (the harness, its stack and its checks:
``cluster_faults.py``).

The leader of the written partitions and a second broker are killed (SIGKILL): one copy is left, below
min.insync.replicas, and the controller quorum is lost. Writes fail visibly and nothing is lost: the ledger
first answers postings 201 (stored in its event store, the outbox), none of which reaches the view because
the relay cannot get them acknowledged; once its relay has published nothing for ``IDO_OUTBOX_STALL_S``
(15 s) it answers 503 with Retry-After (services/common/outbox_gate.py) and the clients retry with the same
key; no other 5xx. Both brokers come back on their data; the relay publishes what waited, writes are
accepted again, every partition has three copies in sync, and the harness checks 0 lost, 0 doubled, view =
replay.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.resilience.cluster_fault_kinds import lose_two_brokers
from tests.resilience.cluster_faults import run_under_paced_load
from tests.resilience.figures import Figures
from tests.resilience.support import Processes
from tests.support.infra import PostgresInfo
from tests.support.kafka_cluster import OwnCluster

pytestmark = pytest.mark.slow


def test_two_of_three_brokers_lost_then_back_under_half_the_capacity(
    procs: Processes, database: PostgresInfo, cluster: OwnCluster, tmp_path: Path, figures: Figures
) -> None:
    run_under_paced_load(procs, database, cluster, tmp_path, figures, test="two of three brokers lost",
                         inject=lose_two_brokers, faults=1, refuses_writes=True)
