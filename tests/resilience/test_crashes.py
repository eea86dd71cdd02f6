"""Crashes: SIGKILL of each service, relay and projector at random moments during a load of postings.

Real processes on a fresh PostgreSQL database and the suite's broker. While six municipalities post
(with Idempotency-Keys, retrying unknown answers), the ministry pays advances, the KB pays a library
and an auditor reads, a chaos thread kills (SIGKILL, whole process group) one of the three services,
their three relays or the projector at random moments, every one of them at least twice, and starts
it again after a random pause. After the load: every
201 is stored once, every stored event is on its topic and applied exactly once by the view, and
the view equals a projection replayed from scratch (seeded: the run's seed is in the figures).
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from tests.resilience.figures import Figures
from tests.resilience.load import Load
from tests.resilience.stack import prepare_bridge, prepare_payments, verify, wait_until_projected
from tests.resilience.support import Client, Proc, Processes, StackEnv, assert_no_secrets
from tests.support.infra import KafkaInfo, PostgresInfo

LOAD_SECONDS = float(os.environ.get("IDO_RESILIENCE_CRASH_SECONDS", "90"))
MAX_REQUESTS = 6_000


@pytest.mark.slow
def test_killed_services_relays_and_projector_lose_and_double_nothing(
    procs: Processes, database: PostgresInfo, kafka: KafkaInfo, tmp_path: Path, figures: Figures
) -> None:
    seed = int(os.environ.get("IDO_RESILIENCE_SEED") or time.time())
    chaos = random.Random(seed)
    stack = StackEnv(tmp_path, kafka, database)
    stack.settings()
    env = stack.env()
    payments = procs.service("payments", env)
    ledger = procs.service("ledger", env)
    bridge = procs.service("bridge", env)
    victims: list[Proc] = [payments, ledger, bridge, procs.relay("payments", env), procs.relay("ledger", env),
                           procs.relay("bridge", env), procs.projector(env)]
    prepare_payments(Client(payments.port or 0, stack.headers("ministry")))
    prepare_bridge(Client(bridge.port or 0, stack.headers("kb")))
    load = Load(stack, [ledger.port or 0], [payments.port or 0], max_requests=MAX_REQUESTS,
                max_seconds=LOAD_SECONDS, with_imports=True, seed=seed, bridge_ports=[bridge.port or 0])
    kills: dict[str, int] = {}
    chaos_errors: list[str] = []

    def chaos_monkey() -> None:
        order = [*victims, *victims]  # each at least twice, in random order, then at random
        chaos.shuffle(order)
        deadline = time.monotonic() + LOAD_SECONDS - 5
        # On a busy machine restarts are slow and the kills owed may not fit in LOAD_SECONDS: the load
        # is then kept on (up to LOAD_SECONDS longer) until each victim has been killed twice under it.
        latest = deadline + LOAD_SECONDS
        while not load.stop.is_set() and time.monotonic() < (latest if order else deadline):
            if order:
                load.deadline = max(load.deadline, time.monotonic() + 30)
            time.sleep(chaos.uniform(1.0, 4.0))
            victim = order.pop() if order else chaos.choice(victims)
            victim.kill()
            kills[victim.name] = kills.get(victim.name, 0) + 1
            time.sleep(chaos.uniform(0.2, 2.0))
            try:
                procs.restart(victim)
            except Exception as error:  # noqa: BLE001 - reported below
                chaos_errors.append(f"{victim.name} did not come back: {error}")

    monkey = threading.Thread(target=chaos_monkey, daemon=True)
    load.start()
    monkey.start()
    monkey.join(timeout=LOAD_SECONDS + 120)
    load.finish()
    for victim in victims:
        if not victim.alive():
            procs.restart(victim)
    figures.add_load("crashes: postings, imports, advances, bridge payments, reads", load.stats.requests,
                     load.stats.seconds, seed=seed, by_status=load.stats.summary()["by_status"])
    for name, count in kills.items():
        figures.add_fault(f"SIGKILL {name}", count)
    settings = load_settings(env)
    view = create_sql_engine(settings.view_db_url)
    accepted = load.accepted.event_ids()
    wait_until_projected(view, accepted, 240)
    verdict = verify(env, view, accepted, tmp_path / "replay", services=("payments", "ledger", "bridge"))
    verdict.record(figures, "crashes")
    view.dispose()
    assert not chaos_errors, chaos_errors
    assert all(kills.get(v.name, 0) >= 2 for v in victims), kills
    assert not load.gave_up, load.gave_up[:10]
    assert not verdict.problems(), verdict.problems()
    assert len(accepted) > 100, "too little load to say anything"
    assert_no_secrets(procs.logs(), stack.secrets())
