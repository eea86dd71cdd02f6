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

from tests.resilience.cluster_faults import FaultRun, run_under_paced_load
from tests.resilience.figures import Figures
from tests.resilience.support import Processes, wait_for
from tests.support.infra import PostgresInfo
from tests.support.kafka_cluster import NODES, OwnCluster

pytestmark = pytest.mark.slow

DOWN_S = 30
"""How long the two stay down: the default ``IDO_OUTBOX_STALL_S`` (15 s) of postings held in the outbox, then
writes refused."""


def _lose_two_brokers(run: FaultRun) -> None:
    leader = run.written_leader()
    second = next(node for node in NODES if node != leader)
    with run.fault("two of three Kafka brokers SIGKILLed (cluster)", f"nodes {leader} and {second} killed"):
        run.cluster.kill_node(leader)
        run.cluster.kill_node(second)
        accepted_at_kill = run.accepted_ids()
        refused_at_kill = run.paced.stats.by_status.get(503, 0)
        run.hold(DOWN_S)  # the two stay down
        held = run.accepted_ids() - accepted_at_kill
        refused = run.paced.stats.by_status.get(503, 0) - refused_at_kill
        reached = held & run.view_applied()
        assert held, "no posting was accepted while two brokers were down"
        assert not reached, f"{len(reached)} postings reached the view with one broker left"
        assert refused > 0, "no posting was answered 503 while the relay could publish nothing"
        # the harness fails the test on any other 5xx, and on a 503 without Retry-After
        run.cluster.start_keeping_data()  # both at once: one alone has no quorum to join
        wait_for(lambda: held <= run.view_applied(), 180, "the postings held in the outbox to reach the view")


def test_two_of_three_brokers_lost_then_back_under_half_the_capacity(
    procs: Processes, database: PostgresInfo, cluster: OwnCluster, tmp_path: Path, figures: Figures
) -> None:
    run_under_paced_load(procs, database, cluster, tmp_path, figures, test="two of three brokers lost",
                         inject=_lose_two_brokers, faults=1, refuses_writes=True)
