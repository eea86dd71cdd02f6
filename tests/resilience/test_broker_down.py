"""Broker down: Kafka is stopped for 30 s while municipalities keep posting.

Kafka of this test's own, so no other test is disturbed: a single broker (scripts/kafka.sh) when the
suite runs on the single node, a three-broker cluster (scripts/kafka-cluster.sh, replication factor 3,
min.insync.replicas 2) when it runs on the cluster (`make resilience`). On the cluster "the broker is
down" means all three nodes are stopped: with one or two down the cluster still answers (or refuses
acks=all writes: tests/cluster), which other tests show; here no client reaches any broker, as with
the single node. Own ports and state dir; the stores on a fresh PostgreSQL database.

Running: payments and ledger services, their relays, the projector; six municipalities posting, the
ministry paying advances, an auditor reading balances with ``includes_event_id``. The broker (every
node of the cluster) is stopped, kept down 30 s, and started again on its data (``--keep-data``).
Then: every POST answered 201 is in the event store; once the broker is back every stored event
reaches its topic and the balances, each counted once; the view equals a replay from scratch; no
answer was a 5xx other than a 503 with Retry-After (which the balances' wait for an event may give while
the broker is away, and every write once its service's relay has published nothing for
``IDO_OUTBOX_STALL_S``, 15 s: services/common/outbox_gate.py; the clients retry those with the same key).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.topics import EXPENDITURES, GRANTS
from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from tests.resilience.figures import Figures
from tests.resilience.load import Load, Supervisor
from tests.resilience.stack import applied_ids, prepare_payments, verify, wait_until_projected
from tests.resilience.support import Client, OwnKafka, Processes, StackEnv, assert_no_secrets
from tests.support.infra import KafkaInfo, PostgresInfo
from tests.support.kafka_cluster import OwnCluster, topics_replication

OUTAGE_S = 30


@pytest.fixture
def own_kafka(tmp_path_factory: pytest.TempPathFactory, kafka: KafkaInfo) -> Iterator[OwnKafka | OwnCluster]:
    """Kafka shaped like the suite's (``kafka``): a cluster of the test's own when the suite runs on one."""
    broker: OwnKafka | OwnCluster = (
        OwnCluster(tmp_path_factory.mktemp("kafka-cluster-own")) if kafka.on_cluster
        else OwnKafka(tmp_path_factory.mktemp("kafka-own"))
    )
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()  # also after a failed start: the scripts stop whatever nodes did start


@pytest.mark.slow
def test_postings_survive_thirty_seconds_without_a_broker(
    procs: Processes, database: PostgresInfo, own_kafka: OwnKafka | OwnCluster, tmp_path: Path, figures: Figures
) -> None:
    stack = StackEnv(tmp_path, own_kafka.info, database)
    kafka_kind = "Kafka cluster (all three nodes)" if own_kafka.info.on_cluster else "Kafka broker"
    stack.settings()
    env = stack.env()
    payments = procs.service("payments", env)
    ledger = procs.service("ledger", env)
    relays = [procs.relay("payments", env), procs.relay("ledger", env)]
    projector = procs.projector(env)
    # The stack's topics have the replication of the Kafka they run on (3 copies, 2 in sync on the cluster).
    topics = [stack.settings().topic(spec.name) for spec in (GRANTS, EXPENDITURES)]
    wanted = ({own_kafka.info.replication_factor}, str(own_kafka.info.min_insync_replicas))
    assert topics_replication(own_kafka.info, topics) == dict.fromkeys(topics, wanted)
    prepare_payments(Client(payments.port or 0, stack.headers("ministry")))
    load = Load(stack, [ledger.port or 0], [payments.port or 0], max_requests=20_000, max_seconds=OUTAGE_S + 180)
    # (a bound, not a duration: finish() ends the load; the cluster takes longer than one node to come back)
    settings = load_settings(env)
    view = create_sql_engine(settings.view_db_url)
    with Supervisor(procs, [*relays, projector]) as supervisor:
        load.start()
        load.phase = "before"
        time.sleep(8)
        # The outage must find the relays and the projector running, however long they took to start on a
        # loaded machine: a posting of this load projected proves the whole path is up.
        deadline = time.monotonic() + 120
        while not load.accepted.event_ids() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert wait_until_projected(view, set(list(load.accepted.event_ids())[:1]), 120), "the path never came up"
        load.phase = "outage"
        # Counted from before the stop: stopping the three nodes of the cluster can take most of its grace (30 s),
        # and the outbox gate refuses writes 15 s after the relays stall, which may fall within the stop itself.
        accepted_before_outage = load.accepted.posting_ids()
        own_kafka.stop()
        figures.add_fault(f"{kafka_kind} stopped {OUTAGE_S} s")
        stopped = time.monotonic()
        time.sleep(OUTAGE_S)
        # held: accepted since the stop began and not in the view while no broker runs (a posting accepted
        # before the brokers went down may have been published and projected in time; these could not be)
        held_in_outbox = load.accepted.posting_ids() - accepted_before_outage - set(applied_ids(view))
        load.phase = "restarting"
        own_kafka.start_keeping_data()
        down_s = time.monotonic() - stopped
        load.phase = "after"
        time.sleep(10)
        load.finish()
        figures.add_load("broker down: postings, advances, reads", load.stats.requests, load.stats.seconds,
                         kafka=kafka_kind, broker_down_s=round(down_s, 1), by_phase=load.outcome.by_phase)
        accepted = load.accepted.event_ids()
        wait_until_projected(view, accepted, 120)
        restarts = dict(supervisor.restarts)
    verdict = verify(env, view, accepted, tmp_path / "replay")
    verdict.record(figures, "broker down")
    view.dispose()
    assert held_in_outbox, "no posting was accepted and held in the outbox while the broker was down"
    assert not load.stats.bad_5xx, load.stats.bad_5xx[:10]
    assert not load.gave_up, load.gave_up[:10]
    assert not verdict.problems(), verdict.problems()
    assert restarts == {}, f"a relay or the projector exited while the broker was away: {restarts}"
    assert_no_secrets(procs.logs(), stack.secrets())
