"""The disaster-recovery drill (issue 19, Must show 3): the stores' PostgreSQL database dropped under load,
recovered from Kafka with `ido recover store`, the services restarted.

The payments and ledger services keep their event stores in one database of the suite's PostgreSQL
server; the ledger's view is in a second one (it survives, and the projector keeps running). Under load
(postings with Idempotency-Keys, 3-row CSV imports, advances, balance reads) the stores' database is
dropped (``DROP DATABASE ... WITH (FORCE)``: every connection cut, every table gone). Clients are
answered 503 while it is gone. Then, as the runbook (docs/operations.md) says: the services and relays
are stopped, the database is created again empty, `ido recover store payments` and `... ledger` rebuild
the stores from their topics, and the services and relays start again; the clients retry what was not
answered. The scenario runs once; the tests below judge it.

The recovery point is what the relays had published: a posting committed in the last moment before the
drop, its event not yet sent by the relay (its lag: a 50 ms poll and a send), is lost with the database.
The services run with ``IDO_ANSWER_AFTER_PUBLISHED_MS``, so such a posting was answered 503 (its client
retries it with the same Idempotency-Key), never 201: the drill fails on any 201 whose event is not stored
after the recovery. RESILIENCE_KAFKA=single or the cluster: the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from sqlalchemy import Engine

from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from services.common.definition import service_definition
from tests.resilience.figures import Figures
from tests.resilience.load import Load, Supervisor
from tests.resilience.stack import (
    Verdict,
    prepare_payments,
    stored_envelopes,
    topic_envelopes,
    verify,
    wait_until_projected,
)
from tests.resilience.support import (
    REPO,
    Client,
    Processes,
    StackEnv,
    drop_database,
    fresh_database,
    wait_for,
)
from tests.support.infra import PostgresInfo, kafka_info
from tests.support.kafka_topics import admin_config

SERVICES = ("payments", "ledger")
BEFORE_S = 8
OUTAGE_S = 8
AFTER_S = 10
CLIENT_ATTEMPTS = 1200
"""A client sends a write up to this many times, 0.25 s apart (about 5 minutes): the runbook's stop, the
recovery and the start take a minute or two on this machine, and a client that gave up would prove nothing."""
ANSWER_AFTER_PUBLISHED_MS = 3000
"""The services answer a write 2xx only once its events are on Kafka (docs/decisions.md): what a lost store
takes with it was never answered 2xx."""
RELAY_LAG_S = 2.0
"""The load runs on this long after the pipeline was seen at work, so the drop hits postings in flight."""
Heads = dict[str, tuple[int, str, str]]


@dataclass
class Drill:
    load: Load
    verdict: Verdict
    recovered: dict[str, tuple[int, str]]
    """Per service: the exit status and output of `ido recover store`."""
    topic_heads: dict[str, Heads]
    store_heads: dict[str, Heads]
    """Each stream's (position, event id, hash) on the topic before the recovery, and in the recovered store."""
    audit: dict[str, tuple[int, str]]
    """`ido audit verify` and `ido audit reconcile`: exit status and output, after the restart."""
    unpublished_at_drop: list[str]
    """Events answered 201 that were not on the topics when the services were stopped: lost with the store
    (the recovery point is what the relay published, docs/decisions.md). Must be none."""
    balances: tuple[Any, Any]
    """A municipality's balance read through the API from the view, and computed from the recovered store."""
    seconds: dict[str, float]


def ido(env: dict[str, str], *argv: str, timeout_s: float = 600) -> tuple[int, str]:
    """The real command, as an operator runs it (without the tests' TEST_* settings)."""
    full = {k: v for k, v in {**os.environ, **env, "PYTHONPATH": str(REPO)}.items() if not k.startswith("TEST_")}
    done = subprocess.run([sys.executable, "-m", "services.common.cli", *argv], env=full, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout_s)
    return done.returncode, done.stdout + done.stderr


def heads(envelopes: list[dict[str, Any]]) -> Heads:
    found: Heads = {}
    for e in envelopes:
        if e["stream_position"] > found.get(e["stream_id"], (0, "", ""))[0]:
            found[e["stream_id"]] = (e["stream_position"], e["event_id"], e["hash"])
    return found


def create_database(server: PostgresInfo, name: str) -> None:
    with psycopg.connect(server.dsn("postgres"), autocommit=True, connect_timeout=10) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')


def prepared(client: Client) -> bool:
    try:
        prepare_payments(client)
    except AssertionError:
        return False
    return True


def view_url(database: PostgresInfo) -> str:
    return (f"postgresql+psycopg://{quote(database.user, safe='')}:{quote(database.password, safe='')}"
            f"@{database.host}:{database.port}/{database.dbname}")


def spent_in_store(env: dict[str, str], code: str) -> int:
    return sum(e["payload"]["amount_cents"] for e in stored_envelopes(load_settings(env), "ledger")
               if e["event_type"] == "ExpenditureRecorded" and e["payload"]["municipality_code"] == code)


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresInfo) -> Iterator[Drill]:
    tmp = tmp_path_factory.mktemp("recover-drill")
    procs = Processes(tmp / "logs")
    stores = fresh_database(postgres_server)
    view_db = fresh_database(postgres_server)
    view: Engine | None = None
    try:
        stack = StackEnv(tmp / "stack", kafka_info(), stores,
                         extra={"IDO_VIEW_DB_URL": view_url(view_db),
                                "IDO_ANSWER_AFTER_PUBLISHED_MS": str(ANSWER_AFTER_PUBLISHED_MS)})
        stack.settings()
        env = stack.env()
        settings = load_settings(env)
        payments = procs.service("payments", env)
        ledger = procs.service("ledger", env)
        relays = [procs.relay("payments", env), procs.relay("ledger", env)]
        services_and_relays = (payments, ledger, *relays)
        projector = procs.projector(env)
        # Answered 2xx only once on Kafka: 503 until the relay (a slower start than the service) runs; both
        # writes answer a retry of the same request without a new event (200).
        ministry = Client(payments.port or 0, stack.headers("ministry"))
        wait_for(lambda: prepared(ministry), 120, "the frame and annex answered 2xx (the relay running)", 1.0)
        ministry.close()
        load = Load(stack, [ledger.port or 0], [payments.port or 0], max_requests=50_000,
                    max_seconds=BEFORE_S + OUTAGE_S + AFTER_S + 300, with_imports=True,
                    attempts=CLIENT_ATTEMPTS)
        seconds: dict[str, float] = {}
        with Supervisor(procs, [*relays, projector]) as supervisor:
            load.start()
            time.sleep(BEFORE_S)  # the load runs: this is the time it runs before the fault, not a wait for it
            # the relays and the projector are at work before the fault (they start slower than the services)
            view = create_sql_engine(settings.view_db_url)
            assert wait_until_projected(view, load.accepted.event_ids(), 120), "nothing projected before the drop"
            time.sleep(RELAY_LAG_S)  # the load runs on a little, the pipeline at work, before the drop
            load.phase = "outage"
            drop_database(postgres_server, stores)
            dropped = time.monotonic()
            time.sleep(OUTAGE_S)  # the database stays lost this long under load

            # The runbook: stop the services and relays (the supervisor must not restart them meanwhile) ...
            load.phase = "recovery"
            supervisor.paused.set()
            stopping = [*services_and_relays]
            with ThreadPoolExecutor(len(stopping)) as pool:
                list(pool.map(lambda proc: proc.stop(grace_s=10), stopping))
            accepted_at_stop = load.accepted.event_ids()
            # ... what the topics hold now is all there is ...
            on_topics_by_service = {
                service: topic_envelopes(admin_config(settings), settings.topic(service_definition(service).topic.name))
                for service in SERVICES
            }
            topic_heads = {service: heads(envelopes) for service, envelopes in on_topics_by_service.items()}
            on_topics = {e["event_id"] for envelopes in on_topics_by_service.values() for e in envelopes}
            # ... an empty database, the stores recovered from the topics (one command per service, at once) ...
            create_database(postgres_server, stores.dbname)
            started = time.monotonic()
            with ThreadPoolExecutor(len(SERVICES)) as pool:
                recovered = dict(zip(SERVICES, pool.map(lambda service: ido(env, "recover", "store", service),
                                                        SERVICES), strict=True))
            seconds["recover stores"] = round(time.monotonic() - started, 1)
            store_heads = {service: heads(stored_envelopes(settings, service)) for service in SERVICES}
            # ... and the services and relays started again.
            for proc in stopping:
                procs.restart(proc)
            supervisor.paused.clear()
            seconds["clients without service"] = round(time.monotonic() - dropped, 1)
            load.phase = "after"
            time.sleep(AFTER_S)  # the load runs on the recovered stores this long
            load.finish()
            accepted = load.accepted.event_ids()
            unpublished = accepted_at_stop - on_topics
            wait_until_projected(view, accepted - unpublished, 180)
        code = "GM0363"
        reader = Client(ledger.port or 0, stack.headers("auditor"))
        balance = reader.get(f"/v1/municipalities/{code}/balances/2024")
        reader.close()
        balances = (balance.status, balance.body), spent_in_store(env, code)
        audit = {"verify": ido(env, "audit", "verify"), "reconcile": ido(env, "audit", "reconcile")}
        verdict = verify(env, view, accepted, tmp / "replay", services=SERVICES)
        yield Drill(load, verdict, recovered, topic_heads, store_heads, audit, sorted(unpublished), balances, seconds)
    finally:
        if view is not None:
            view.dispose()
        procs.close()
        drop_database(postgres_server, stores)
        drop_database(postgres_server, view_db)


@pytest.mark.slow
def test_the_recovered_stores_have_the_topics_stream_heads(drill: Drill) -> None:
    for service in SERVICES:
        status, said = drill.recovered[service]
        assert status == 0, said
        assert f"recovered {service} from " in said
        assert drill.store_heads[service] == drill.topic_heads[service]
    assert len(drill.store_heads["ledger"]) > 100, "too little was recorded before the drop to show anything"


@pytest.mark.slow
def test_after_the_drill_audit_verify_and_reconcile_pass_and_balances_match_the_store(drill: Drill) -> None:
    for command in ("verify", "reconcile"):
        status, said = drill.audit[command]
        assert status == 0, f"ido audit {command}:\n{said[-3000:]}"
    (status, body), spent_cents = drill.balances
    assert status == 200, body
    assert body["spent_cents"] == spent_cents > 0, body


@pytest.mark.slow
def test_no_write_answered_201_is_lost_and_the_outage_answers_503(drill: Drill, figures: Figures) -> None:
    """Every 201 is stored after the recovery: a write whose events the relay had not published when the
    store was lost was answered 503, not 201. While the database is gone, requests get 503."""
    load = drill.load
    figures.add_fault("the event stores' PostgreSQL database dropped under load, recovered from Kafka")
    figures.add_load("recovery drill: postings, imports, advances, reads", load.stats.requests, load.stats.seconds,
                     by_phase=load.outcome.by_phase, durations_s=drill.seconds,
                     unpublished_at_drop=len(drill.unpublished_at_drop))
    drill.verdict.record(figures, "recovery drill")
    assert not drill.verdict.problems(), drill.verdict.problems()
    assert drill.unpublished_at_drop == [], "answered 201, but not on the topics when the store was lost"
    outage = load.outcome.by_phase.get("outage", {})
    assert outage, "no request was made while the database was gone"
    assert set(outage) - {"200", "201"} == {"503+retry-after"}, outage
    assert load.outcome.by_phase.get("after", {}).get("201"), load.outcome.by_phase
    assert not load.gave_up, load.gave_up[:10]
