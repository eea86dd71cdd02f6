"""PostgreSQL restarted during load: requests fail fast with 503, succeed after it is back, and
nothing is half-written.

A PostgreSQL server of this test's own (scripts/postgres.sh on its own port and state dir) holds
the event stores and the ledger's view; the suite's broker carries the topics. Under load
(postings, 3-row CSV imports, advances, reads) the server is stopped (``pg_ctl stop -m fast``, its
data kept), left down 15 s, and started again on the same data. A supervisor restarts a relay or
projector that exits, as systemd would. The scenario runs once; the tests below judge it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from tests.resilience.figures import Figures
from tests.resilience.load import Load, Supervisor
from tests.resilience.stack import Verdict, prepare_payments, verify, wait_until_projected
from tests.resilience.support import Client, OwnPostgres, Processes, StackEnv, assert_no_secrets, fresh_database
from tests.support.infra import kafka_info

DOWN_S = 15


@dataclass
class Scenario:
    load: Load
    verdict: Verdict
    restarts: dict[str, int]
    logs: dict[str, str]
    tokens: list[str]
    recovered_s: float


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("pg-restart")
    server = OwnPostgres(tmp / "pg")
    procs = Processes(tmp / "logs")
    try:
        database = fresh_database(server.start())
        stack = StackEnv(tmp / "stack", kafka_info(), database)
        stack.settings()
        env = stack.env()
        payments = procs.service("payments", env)
        ledger = procs.service("ledger", env)
        watched = [procs.relay("payments", env), procs.relay("ledger", env), procs.projector(env)]
        prepare_payments(Client(payments.port or 0, stack.headers("ministry")))
        load = Load(stack, [ledger.port or 0], [payments.port or 0], max_requests=20_000, max_seconds=DOWN_S + 60,
                    with_imports=True)
        with Supervisor(procs, watched) as supervisor:
            load.start()
            time.sleep(8)
            load.phase = "outage"
            server.stop_fast()
            time.sleep(DOWN_S)
            server.start_keeping_data()
            back = time.monotonic()
            load.phase = "after"
            first_201_after: list[float] = []

            def recovered() -> bool:
                counts = load.outcome.by_phase.get("after", {})
                if counts.get("201") and not first_201_after:
                    first_201_after.append(time.monotonic() - back)
                return bool(first_201_after)

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not recovered():
                time.sleep(0.2)
            time.sleep(10)
            load.finish()
            view = create_sql_engine(load_settings(env).view_db_url)
            accepted = load.accepted.event_ids()
            wait_until_projected(view, accepted, 180)
            restarts = dict(supervisor.restarts)
        verdict = verify(env, view, accepted, tmp / "replay")
        view.dispose()
        yield Scenario(load, verdict, restarts, procs.logs(), list(stack.issued),
                       first_201_after[0] if first_201_after else -1.0)
    finally:
        procs.close()
        server.stop()



@pytest.mark.slow
def test_after_a_postgres_restart_nothing_is_lost_doubled_or_half_written(
    scenario: Scenario, figures: Figures
) -> None:
    load = scenario.load
    figures.add_fault(f"PostgreSQL stopped {DOWN_S} s and restarted")
    figures.add_load("PostgreSQL restart: postings, imports, advances, reads", load.stats.requests,
                     load.stats.seconds, by_phase=load.outcome.by_phase, recovered_s=round(scenario.recovered_s, 1),
                     restarts_by_supervisor=scenario.restarts)
    scenario.verdict.record(figures, "PostgreSQL restart")
    assert not scenario.verdict.problems(), scenario.verdict.problems()
    assert load.outcome.by_phase.get("outage"), "no request was made while PostgreSQL was down"
    assert_no_secrets(scenario.logs, scenario.tokens)


@pytest.mark.slow
def test_postings_succeed_soon_after_postgres_is_back(scenario: Scenario) -> None:
    assert 0 <= scenario.recovered_s < 10, f"no posting succeeded within 10 s after PostgreSQL was back: {scenario}"
    assert not scenario.load.gave_up, scenario.load.gave_up[:10]


@pytest.mark.slow
def test_while_postgres_is_down_requests_fail_fast_with_503(scenario: Scenario) -> None:
    outage: dict[str, Any] = scenario.load.outcome.by_phase.get("outage", {})
    failures = {status: n for status, n in outage.items() if status not in ("200", "201")}
    assert failures, outage
    assert set(failures) == {"503+retry-after"}, outage
    seconds = sorted(scenario.load.outcome.failure_seconds.get("outage", []))
    assert seconds[int(len(seconds) * 0.9)] < 1.0, f"90 % of the refusals must come within 1 s: {seconds[-20:]}"
    assert seconds[-1] < 15, f"a refusal took {seconds[-1]:.1f} s"
