"""Read-your-writes waiting: one poller serves every waiting request, and each wakes for its own event."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, text

from services.common.adapters.sql import create_sql_engine
from services.common.consumer import applied_events, consumer_metadata
from services.ledger.read_side.sql.projected import ProjectedEvents


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_sql_engine(f"sqlite:///{tmp_path / 'view.db'}")
    consumer_metadata.create_all(engine)
    return engine


def apply(engine: Engine, *event_ids: str, consumer: str = "ledger-balances") -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(applied_events),
            [{"consumer": consumer, "event_id": e, "topic": "t", "partition": 0, "offset": 0} for e in event_ids],
        )


def test_waiters_wake_for_their_own_event_and_share_the_polls(engine: Engine) -> None:
    projected = ProjectedEvents(engine, "ledger-balances", poll_interval_ms=10, max_waiters=31)  # all 31 wait
    outcomes: dict[str, bool] = {}

    def wait(event_id: str, timeout_ms: int) -> None:
        outcomes[event_id] = projected.wait(event_id, timeout_ms)

    waiters = [threading.Thread(target=wait, args=(f"e{i}", 3000)) for i in range(30)]
    waiters.append(threading.Thread(target=wait, args=("never", 300)))
    for thread in waiters:
        thread.start()
    time.sleep(0.1)
    apply(engine, "e0", "other-consumers-only", consumer="someone-else")
    apply(engine, *(f"e{i}" for i in range(1, 30)))
    started = time.monotonic()
    time.sleep(0.05)
    apply(engine, "e0")
    for thread in waiters:
        thread.join(5)
    assert outcomes == {**{f"e{i}": True for i in range(30)}, "never": False}
    # 31 requests waited ~0.3 s: one poller's queries, not one query per request per interval
    assert projected.polls < 0.3 / 0.01 + 10
    assert time.monotonic() - started < 2
    assert not projected._waiting and not projected._found


def test_an_already_applied_event_and_a_timeout(engine: Engine) -> None:
    projected = ProjectedEvents(engine, "ledger-balances", poll_interval_ms=5)
    apply(engine, "done")
    assert projected.wait("done", 1000) is True
    before = time.monotonic()
    assert projected.wait("missing", 100) is False
    assert 0.09 <= time.monotonic() - before < 1


def test_a_view_database_error_reaches_the_waiting_request_and_the_next_one_polls_anew(engine: Engine) -> None:
    projected = ProjectedEvents(engine, "ledger-balances", poll_interval_ms=5)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE applied_events"))
    with pytest.raises(Exception, match="applied_events"):
        projected.wait("e1", 2000)
    consumer_metadata.create_all(engine)
    apply(engine, "e1")
    assert projected.wait("e1", 2000) is True
