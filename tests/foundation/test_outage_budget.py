"""A request's time in the event store's retries is bounded; outside a request, and once an attempt
succeeds, the store's own retries are left as they are (services/common/outage_budget.py).

The operations are decorated as eventsourcing decorates its PostgreSQL recorder's (``@retry`` of
``OperationalError``, 10 attempts); the clock is the test's, one second an attempt, as when each
attempt waits the pool's timeout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError
from eventsourcing.utils import retry

from services.common import outage_budget
from services.common.database_unreachable import DATABASE_UNREACHABLE
from services.common.outage_budget import DatabaseAway, bound_retries


class Datastore:
    """Each connection taken costs a second of the test's clock; the next ``failures`` attempts fail."""

    def __init__(self) -> None:
        self.now = 0.0
        self.failures = 1_000
        self.attempts = 0

    def clock(self) -> float:
        return self.now

    @contextmanager
    def get_connection(self) -> Iterator[str]:
        self.attempts += 1
        self.now += 1.0
        if self.failures:
            self.failures -= 1
            raise OperationalError("connection refused")
        yield "connection"


@pytest.fixture
def datastore(monkeypatch: pytest.MonkeyPatch) -> Datastore:
    monkeypatch.setattr("eventsourcing.utils.sleep", lambda _s: None)
    store = Datastore()
    bound_retries(store)
    return store


def operation(datastore: Datastore) -> Any:
    @retry((OperationalError,), max_attempts=10, wait=0.2)
    def select() -> Any:
        with datastore.get_connection() as connection:
            return connection

    return select()


def test_a_request_stops_retrying_after_its_budget_and_its_next_operation_makes_no_attempt(
    datastore: Datastore,
) -> None:
    token = outage_budget.arm(budget_s=2.0, clock=datastore.clock)
    try:
        with pytest.raises(DatabaseAway):
            operation(datastore)
        assert datastore.attempts == 2  # begun at 0 and 1 s; a third would begin at 2 s, the budget's end
        with pytest.raises(DatabaseAway):
            operation(datastore)
        assert datastore.attempts == 2
    finally:
        outage_budget.disarm(token)
    assert isinstance(DatabaseAway("x"), DATABASE_UNREACHABLE)  # answered 503 with Retry-After


def test_an_attempt_that_succeeds_stops_the_clock(datastore: Datastore) -> None:
    """After a restart the pool hands out dead connections first: each costs one retry, not the request."""
    token = outage_budget.arm(budget_s=2.0, clock=datastore.clock)
    try:
        datastore.failures = 1
        assert operation(datastore) == "connection"
        datastore.failures = 1  # 2 s after the first failure, but the success in between stopped its clock
        assert operation(datastore) == "connection"
        assert datastore.attempts == 4
        datastore.failures = 1_000
        with pytest.raises(DatabaseAway):
            operation(datastore)
        assert datastore.attempts == 6  # the whole budget again
    finally:
        outage_budget.disarm(token)


def test_outside_a_request_the_store_keeps_its_own_ten_attempts(datastore: Datastore) -> None:
    with pytest.raises(OperationalError):
        operation(datastore)
    assert datastore.attempts == 10
    token = outage_budget.arm(budget_s=2.0, clock=datastore.clock)
    outage_budget.disarm(token)
    with pytest.raises(OperationalError):  # a request that ended leaves nothing armed
        operation(datastore)
    assert datastore.attempts == 20
