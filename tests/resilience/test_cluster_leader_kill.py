"""Issue 19, Must show 2 (first fault): the leader of the partitions being written is SIGKILLed, twice,
under postings paced at more than half of the write path's capacity, measured at the start of this run.

A three-broker cluster of the test's own (scripts/kafka-cluster.sh: RF 3, min.insync.replicas 2), whatever
Kafka the suite runs on; the stores on a fresh PostgreSQL database. Running: payments and ledger services,
their relays, the projector. First a closed-loop burst measures the capacity (postings answered 201 per
second, ``capacity.py``); then postings are paced at ``SHARE`` of it while, twice, the broker leading most
partitions of the expenditures topic (the one the postings go to) is killed with SIGKILL, kept down
``DOWN_S`` seconds while the other two lead, and started again on its data until every partition has three
copies in sync. Then, as the other fault tests define it: every posting answered 201 is stored, every
stored event is on its topic and applied once, the view equals a replay from offset 0; no client gave up
and no 5xx but 503 with Retry-After; the relays and the projector never exited; the load held at least
half the capacity. The figures (capacity, load, seconds unavailable, p99 during each fault) go to
tests/resilience/README.md.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.topics import EXPENDITURES
from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from tests.resilience.capacity import Accepted201, PacedPostings, measure_capacity, window_figures
from tests.resilience.figures import Figures
from tests.resilience.load import Supervisor
from tests.resilience.stack import prepare_payments, verify, wait_until_projected
from tests.resilience.support import Client, Processes, StackEnv, assert_no_secrets, wait_for
from tests.support.infra import PostgresInfo
from tests.support.kafka_cluster import OwnCluster, partition_states, topics_replication

pytestmark = pytest.mark.slow

SHARE = 0.55
"""The paced load's share of the measured capacity: above the half the issue asks for, so that the check
of the achieved rate (at least half) has room for the machine's jitter."""
KILLS = 2
DOWN_S = 10
"""How long a killed leader stays down (the load then runs on two brokers)."""
STEADY_S = 5
TEST = "leader of the written partitions SIGKILLed twice"


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnCluster]:
    own = OwnCluster(tmp_path_factory.mktemp("kafka-cluster-leader"))
    try:
        own.start()
        yield own
    finally:
        own.stop()  # also after a failed start: the script stops whatever nodes did start


def _states(cluster: OwnCluster, topic: str) -> dict[tuple[str, int], tuple[int, int]]:
    try:
        return partition_states(cluster.info, [topic])
    except Exception:  # noqa: BLE001 - a node is down or an election is under way: asked again
        return {}


def _led_without(cluster: OwnCluster, topic: str, node: int) -> bool:
    states = _states(cluster, topic)
    return bool(states) and all(leader not in (node, -1) for leader, _ in states.values())


def _all_in_sync(cluster: OwnCluster, topic: str) -> bool:
    states = _states(cluster, topic)
    return bool(states) and all(in_sync == 3 for _, in_sync in states.values())


def test_leader_of_the_written_partitions_killed_twice_under_half_the_capacity(
    procs: Processes, database: PostgresInfo, cluster: OwnCluster, tmp_path: Path, figures: Figures
) -> None:
    stack = StackEnv(tmp_path, cluster.info, database)
    stack.settings()
    env = stack.env()
    payments = procs.service("payments", env)
    ledger = procs.service("ledger", env)
    relays = [procs.relay("payments", env), procs.relay("ledger", env)]
    projector = procs.projector(env)
    prepare_payments(Client(payments.port or 0, stack.headers("ministry")))
    settings = load_settings(env)
    written = settings.topic(EXPENDITURES.name)
    assert topics_replication(cluster.info, [written]) == {written: ({3}, "2")}
    view = create_sql_engine(settings.view_db_url)
    accepted = Accepted201()

    capacity = measure_capacity(stack, ledger.port or 0, accepted)
    assert capacity.postings > 50, f"the capacity burst got too few postings through: {capacity}"
    first = next(iter(accepted.event_ids.values()))
    assert wait_until_projected(view, {first}, 120), "the path to the view never came up"
    target = capacity.per_s * SHARE
    paced = PacedPostings(stack, ledger.port or 0, accepted, rate_per_s=target,
                          max_postings=int(target * 900) + 100, max_seconds=900)
    windows: list[tuple[int, float, float]] = []
    with Supervisor(procs, [*relays, projector]) as supervisor:
        paced.start()
        try:
            paced.stop.wait(STEADY_S)  # holds the load steady before the first fault
            for _ in range(KILLS):
                leaders = Counter(leader for leader, _ in _states(cluster, written).values())
                assert leaders and -1 not in leaders, f"{written} has a partition without a leader: {leaders}"
                victim = leaders.most_common(1)[0][0]
                killed_at = time.monotonic()
                cluster.kill_node(victim)
                figures.add_fault("SIGKILL the Kafka leader of the written partitions (cluster)")
                wait_for(lambda v=victim: _led_without(cluster, written, v), 60,
                         f"the leaders to move off node {victim}")
                time.sleep(DOWN_S)  # holds the node down: the load runs on two brokers
                cluster.start_node(victim)
                wait_for(lambda: _all_in_sync(cluster, written), 180, "every partition to have three copies in sync")
                windows.append((victim, killed_at, time.monotonic()))
                time.sleep(STEADY_S)  # holds the load steady between and after the faults
        finally:
            paced.finish()
        event_ids = set(accepted.event_ids.values())
        wait_until_projected(view, event_ids, 240)
        restarts = dict(supervisor.restarts)
    posted = paced.answered()
    run_s = max(p.answered_s for p in posted) - paced.started
    achieved = sum(p.status == 201 for p in posted) / run_s
    figures.add_load("cluster leader killed: paced postings", paced.stats.requests, paced.stats.seconds,
                     capacity_per_s=round(capacity.per_s, 1), target_per_s=round(target, 1))
    for victim, start, end in windows:
        seen = window_figures(posted, start, end)
        figures.add_fault_under_load(TEST, f"node {victim} killed, {round(end - start, 1)} s to three in sync",
                                     capacity_per_s=capacity.per_s, target_per_s=target, achieved_per_s=achieved,
                                     requests=seen.postings, unavailable_s=seen.unavailable_s, p99_ms=seen.p99_ms)
    verdict = verify(env, view, event_ids, tmp_path / "replay")
    verdict.record(figures, TEST)
    view.dispose()
    assert len(windows) == KILLS
    assert not accepted.gave_up, accepted.gave_up[:10]
    assert not paced.stats.bad_5xx, paced.stats.bad_5xx[:10]
    assert not verdict.problems(), verdict.problems()
    assert restarts == {}, f"a relay or the projector exited while a leader was killed: {restarts}"
    assert achieved >= 0.5 * capacity.per_s, (
        f"the load held {achieved:.1f} postings/s, less than half the capacity {capacity.per_s:.1f}/s")
    assert_no_secrets(procs.logs(), stack.secrets())
