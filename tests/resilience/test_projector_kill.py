"""The projector SIGKILLed in the middle of a history: every event counted once, and a second projection
(a replay from offset 0) gives the same books. A fault test (~50 s per store): `make resilience`."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.common.adapters.sql import create_sql_engine
from services.common.config import Settings, load_settings
from services.common.consumer import ProjectionRunner, applied_events
from services.common.kafka_credentials import PROJECTOR
from services.common.signing import build_provenance_check
from services.ledger.entrypoints.projector import build_runner
from services.ledger.read_side import LedgerQueries, PointInTime, balances_projection
from tests.ledger.conftest import AMSTERDAM
from tests.ledger.events import Streams, at
from tests.ledger.test_projection import M, expenditure, run_until, scenario
from tests.support.infra import KafkaInfo

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
def env(store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str) -> dict[str, str]:
    return {**store_env, **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix}


@pytest.fixture
def live(env: dict[str, str]) -> Settings:
    return load_settings(env)


def start_projector(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.ledger.entrypoints.projector"],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )



def test_projector_killed_midway_counts_every_event_once_and_a_replay_gives_the_same_books(
    live: Settings, env: dict[str, str], kafka: KafkaInfo, tmp_path: Path
) -> None:
    s = Streams(live.topic_prefix)
    scenario(s)
    codes = [f"GM{n:04d}" for n in range(1, 31)]
    for i in range(3000):
        expenditure(s, codes[i % len(codes)], at("2024-04-01"), amount_cents=i + 1, booked_on="2024-04-01")
    s.send(live)
    total = len(s.sent)
    engine = create_sql_engine(live.view_db_url)

    def applied() -> int:
        try:
            with engine.connect() as connection:
                return int(connection.execute(select(func.count()).select_from(applied_events)).scalar_one())
        except Exception:  # noqa: BLE001 - tables not there yet
            return 0

    projector = start_projector(env)
    deadline = time.monotonic() + 60
    while applied() == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    projector.send_signal(signal.SIGKILL)
    projector.wait(timeout=10)
    at_kill = applied()
    assert 0 < at_kill, "the projector applied nothing before it was killed"
    print(f"projector killed after {at_kill} of {total} events")

    runner = build_runner(live)
    try:
        run_until(runner, engine, total)
    finally:
        runner.close()
    assert applied() == total
    queries = LedgerQueries(engine)
    books = queries.national(2024, PointInTime())
    expected_spent = sum(range(1, 3001)) + (300_000 + 4_000 + 150_000) * M
    assert books["totals"]["spent_cents"] == expected_spent

    replay_engine = create_sql_engine(f"sqlite:///{tmp_path}/replay.sqlite")
    replay = ProjectionRunner(
        projection=balances_projection(),
        engine=replay_engine,
        topics=[live.topic(t) for t in ("ido.grants.v1", "ido.bridge.v1", "ido.expenditures.v1")],
        kafka_config=kafka.client(PROJECTOR),
        dead_letter_topic=live.topic("ido.deadletter.v1"),
        group_id=f"{live.topic_prefix}ledger-balances-replay",  # the projector may use groups named so
        provenance=build_provenance_check(live),
    )
    try:
        run_until(replay, replay_engine, total)
    finally:
        replay.close()
    replayed = LedgerQueries(replay_engine)
    for point in (PointInTime(), PointInTime(as_of=datetime.date(2024, 6, 30))):
        a, b = queries.national(2024, point), replayed.national(2024, point)
        a.pop("offsets"), b.pop("offsets")
        assert a == b
    for code in codes[:3] + [AMSTERDAM]:
        assert {k: v for k, v in queries.balances(code, 2024, PointInTime()).items() if k != "offsets"} == {
            k: v for k, v in replayed.balances(code, 2024, PointInTime()).items() if k != "offsets"
        }
