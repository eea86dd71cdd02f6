"""Read-your-writes waiting: one poller serves every waiting request, and each wakes for its own event."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, text

from services.common.adapters.sql import create_sql_engine
from services.common.consumer import applied_events, consumer_metadata
from services.ledger.read_side.sql.projected import ProjectedEvents
from tests.support.waiting import ManualClock, wait_until


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
    clock = ManualClock()  # the requests' timeouts pass when the test says
    projected = ProjectedEvents(engine, "ledger-balances", poll_interval_ms=10, max_waiters=31, clock=clock)
    outcomes: dict[str, bool] = {}
    queried_by: list[int] = []  # the thread of every query of applied_events

    @event.listens_for(engine, "before_cursor_execute")
    def note(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "applied_events" in statement:
            queried_by.append(threading.get_ident())

    def wait(event_id: str, timeout_ms: int) -> None:
        outcomes[event_id] = projected.wait(event_id, timeout_ms)

    waiters = [threading.Thread(target=wait, args=(f"e{i}", 10_000)) for i in range(30)]
    waiters.append(threading.Thread(target=wait, args=("never", 300)))
    for thread in waiters:
        thread.start()
    wait_until(lambda: projected._waiters == 31, 10, "31 requests waiting")
    apply(engine, "e0", "other-consumers-only", consumer="someone-else")
    apply(engine, *(f"e{i}" for i in range(1, 30)))
    wait_until(lambda: all(f"e{i}" in outcomes for i in range(1, 30)), 10, "e1..e29 woken")
    assert "e0" not in outcomes and "never" not in outcomes  # e0 applied for another consumer only: still waits
    clock.advance(0.3)
    wait_until(lambda: "never" in outcomes, 10, "the request for an event never applied to give up")
    assert "e0" not in outcomes  # its own timeout (10 s) has not passed
    apply(engine, "e0")
    for thread in waiters:
        thread.join(10)
    assert not [thread.name for thread in waiters if thread.is_alive()]
    assert outcomes == {**{f"e{i}": True for i in range(30)}, "never": False}
    # one poller's queries for the 31 requests, never a query of a request's own thread
    assert len(set(queried_by)) == 1 and len(queried_by) == projected.polls, (len(set(queried_by)), projected.polls)
    assert not set(queried_by) & {thread.ident for thread in waiters}
    assert not projected._waiting and projected._waiters == 0


def test_an_already_applied_event_and_a_timeout(engine: Engine) -> None:
    clock = ManualClock()
    projected = ProjectedEvents(engine, "ledger-balances", poll_interval_ms=5, clock=clock)
    apply(engine, "done")
    assert projected.wait("done", 1000) is True
    answer: dict[str, bool] = {}
    waiter = threading.Thread(target=lambda: answer.update(missing=projected.wait("missing", 100)))
    waiter.start()
    try:
        # The clock stands still: the request looks at it again and again, and keeps waiting.
        readings = clock.readings
        wait_until(lambda: clock.readings >= readings + 3, 10, "the waiting request to look at the clock again")
        assert waiter.is_alive() and not answer
        clock.advance(0.09)
        wait_until(lambda: clock.readings >= readings + 5, 10, "the waiting request to look at the clock again")
        assert waiter.is_alive() and not answer
        clock.advance(0.02)  # its 100 ms have passed
    finally:
        waiter.join(10)
    assert answer == {"missing": False}


def test_a_view_database_error_reaches_the_waiting_request_and_the_next_one_polls_anew(engine: Engine) -> None:
    projected = ProjectedEvents(engine, "ledger-balances", poll_interval_ms=5)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE applied_events"))
    with pytest.raises(Exception, match="applied_events"):
        projected.wait("e1", 2000)
    consumer_metadata.create_all(engine)
    apply(engine, "e1")
    assert projected.wait("e1", 2000) is True
