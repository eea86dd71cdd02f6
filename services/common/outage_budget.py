"""A request's time in the event store's retries while PostgreSQL is away, bounded.

eventsourcing retries each PostgreSQL operation (``@retry(max_attempts=10, wait=0.2)``), and each
attempt may wait the pool's timeout (``POSTGRES_CONNECT_TIMEOUT``, 1 s) for a connection: up to
~12 s an operation during an outage. A CSV import makes ~6 operations in a row; in the restart test
of ``make resilience`` imports took 12.9-21.6 s and a client gave up after 15 s, while the breaker
(services/common/http.py) answered new requests 503 within milliseconds: it is asked only when a
request starts.

Here a request's first failed attempt starts its clock (from when that attempt began). Once that clock has run
``REQUEST_OUTAGE_BUDGET_S``, the request's next attempt raises ``DatabaseAway`` at once, which the
store does not retry and the HTTP layer answers 503 with Retry-After (and trips the breaker). An
attempt that succeeds stops the clock: after a restart the pool still holds dead connections, and
one of those must cost one retry, not a 503.

Outside a request (relays, projectors, the CLI) nothing is armed: they keep the store's own retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import OperationalError as StoreOperationalError

REQUEST_OUTAGE_BUDGET_S = 2.0
"""As long as the store's own ten retries take when each attempt fails at once (connection refused)."""


class DatabaseAway(Exception):
    """The request has spent its time on the store's retries; the database is taken to be away."""


@dataclass
class _RequestClock:
    budget_s: float
    clock: Callable[[], float]
    failing_since: float | None = None


_REQUEST_CLOCK: ContextVar[_RequestClock | None] = ContextVar("ido_request_outage_clock", default=None)


def arm(budget_s: float = REQUEST_OUTAGE_BUDGET_S, clock: Callable[[], float] = time.monotonic) -> Token[Any]:
    """Called when a request starts; ``disarm`` with the token when it ends."""
    return _REQUEST_CLOCK.set(_RequestClock(budget_s, clock))


def disarm(token: Token[Any]) -> None:
    try:
        _REQUEST_CLOCK.reset(token)
    except ValueError:  # torn down in another context: the value dies with that context
        pass


def bound_retries(datastore: Any) -> None:
    """Routes every connection the datastore's recorders take (``get_connection``, which ``cursor``
    and ``transaction`` call) through the armed request's clock."""
    taken: Callable[[], AbstractContextManager[Any]] = datastore.get_connection

    @contextmanager
    def get_connection() -> Iterator[Any]:
        request = _REQUEST_CLOCK.get()
        if request is None:
            with taken() as connection:
                yield connection
            return
        attempted_at = request.clock()
        if request.failing_since is not None and attempted_at - request.failing_since >= request.budget_s:
            raise DatabaseAway(f"the event store failed for {request.budget_s:g} s of this request's retries")
        try:
            with taken() as connection:
                yield connection
        except (StoreOperationalError, StoreInterfaceError):
            if request.failing_since is None:  # from the start of the failed attempt: it may have waited the pool
                request.failing_since = attempted_at
            raise
        request.failing_since = None

    datastore.get_connection = get_connection
