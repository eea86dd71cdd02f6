"""Scale-out: two of everything behind one PostgreSQL database.

Two projector processes in one consumer group share the partitions of the view stored in
PostgreSQL; one is killed (SIGKILL) mid-load and the other takes over its partitions from the
offsets recorded in the view. Two instances of each HTTP service (payments, bridge, ledger) accept
postings at the same time, the clients spread over both. Then: every 201 stored once, every stored event on
its topic and applied exactly once, the view equal to a replay from scratch, and the survivor's log
holds all nine partitions (the broker's view of the group).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from tests.resilience.figures import Figures
from tests.resilience.load import Load
from tests.resilience.stack import prepare_bridge, prepare_payments, verify, wait_until_projected
from tests.resilience.support import Client, Processes, StackEnv, assert_no_secrets, wait_for
from tests.support.infra import KafkaInfo, PostgresInfo

PARTITIONS = 9  # three topics of three partitions


def group_members(kafka: KafkaInfo, group: str) -> list[int]:
    """How many partitions each member of the consumer group holds (sorted), as the broker sees it."""
    admin = KafkaAdminClient(**kafka.client(), client_id="resilience-probe", request_timeout_ms=10000)
    try:
        described = admin.describe_groups([group]).get(group) or {}
    finally:
        admin.close()
    if described.get("group_state") != "Stable":
        return []
    counts = []
    for member in described.get("members", []):
        assigned = (member.get("member_assignment") or {}).get("assigned_partitions") or []
        counts.append(sum(len(entry["partitions"]) for entry in assigned))
    return sorted(counts)


@pytest.mark.slow
def test_two_of_everything_share_the_work_and_survive_losing_a_projector(
    procs: Processes, database: PostgresInfo, kafka: KafkaInfo, tmp_path: Path, figures: Figures
) -> None:
    stack = StackEnv(tmp_path, kafka, database)
    stack.settings()
    env = stack.env()
    payments = [procs.service("payments", env, name=f"payments-{i}") for i in (1, 2)]
    ledgers = [procs.service("ledger", env, name=f"ledger-{i}") for i in (1, 2)]
    bridges = [procs.service("bridge", env, name=f"bridge-{i}") for i in (1, 2)]
    procs.relay("payments", env)
    procs.relay("ledger", env)
    procs.relay("bridge", env)
    first = procs.projector(env, name="projector-1")
    second = procs.projector(env, name="projector-2")
    prepare_payments(Client(payments[0].port or 0, stack.headers("ministry")))
    prepare_bridge(Client(bridges[1].port or 0, stack.headers("kb")))
    group = f"{stack.topic_prefix}ledger-balances"
    shared = wait_for(lambda: (m := group_members(kafka, group)) and len(m) == 2 and m[0] > 0
                      and sum(m) == PARTITIONS and m, 90, "the two projectors to share the nine partitions")
    load = Load(stack, [p.port or 0 for p in ledgers], [p.port or 0 for p in payments], max_requests=8_000,
                max_seconds=50, bridge_ports=[p.port or 0 for p in bridges])
    load.start()
    time.sleep(15)
    first.kill()
    figures.add_fault("SIGKILL one of two projectors in a group")
    took_over = wait_for(lambda: group_members(kafka, group) == [PARTITIONS], 90,
                         "the surviving projector to take over every partition")
    load.finish()
    figures.add_load("scale-out: 2 payments, 2 bridges, 2 ledgers, 2 projectors", load.stats.requests,
                     load.stats.seconds, by_status=load.stats.summary()["by_status"])
    settings = load_settings(env)
    view = create_sql_engine(settings.view_db_url)
    accepted = load.accepted.event_ids()
    wait_until_projected(view, accepted, 180)
    verdict = verify(env, view, accepted, tmp_path / "replay", services=("payments", "ledger", "bridge"))
    verdict.record(figures, "scale-out")
    view.dispose()
    assert second.alive(), second.log_text()[-3000:]
    assert took_over and shared, (shared, took_over)
    assert not load.stats.bad_5xx, load.stats.bad_5xx[:10]
    assert not load.gave_up, load.gave_up[:10]
    assert not verdict.problems(), verdict.problems()
    for instance in (*payments, *ledgers, *bridges):
        assert re.search(r"POST \S+ 201", instance.log_text()), f"{instance.name} accepted no posting"
    assert_no_secrets(procs.logs(), stack.secrets())
