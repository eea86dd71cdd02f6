"""Writes refused while a service's events stop reaching Kafka (issue 19: two of three brokers lost).

A write is stored in the service's own event store, which is the outbox its relay publishes from, so a
broker outage alone does not stop writes: the events wait and nothing is lost. But while they wait no
consumer sees them, and a client answered 201 for hours believes the money reached the books of the
others. So once the relay has published nothing for ``IDO_OUTBOX_STALL_S`` while events wait, writes
answer 503 with Retry-After (nothing stored) until it moves again: the failure is visible to the one
client that can act on it, and the outbox stops growing. Reads go on.

The gate arms after the relay's first publication (a tracked position): a service whose relay never ran
(a unit test, an import before the first start of the relays) is not refused; `/readyz` reports that lag.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from services.common.errors import Unavailable

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
"""A broker outage lasts seconds to minutes: asking sooner only adds refused requests."""


class OutboxPositions(Protocol):
    def head(self) -> int: ...

    def position(self) -> int: ...


@dataclass(frozen=True)
class Stall:
    waited_s: float
    head: int
    position: int

    def refusal(self) -> Unavailable:
        return Unavailable(
            f"this service's events have not reached Kafka for {int(self.waited_s)} s (events after position "
            f"{self.position} wait in its outbox); nothing was stored. Retry after Retry-After seconds "
            "(a posting with the same Idempotency-Key)",
            retry_after_s=RETRY_AFTER_S,
        )


class OutboxGate:
    """Looks at the relay's position at most every ``check_every_s`` (two small reads; the request that
    finds the last look stale makes it, the others use it), so a write pays nothing measurable."""

    def __init__(
        self, positions: OutboxPositions, stall_s: float, check_every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.positions = positions
        self.stall_s = stall_s
        self.check_every_s = check_every_s
        self.clock = clock
        self._lock = threading.Lock()
        self._next_look = 0.0
        self._seen_position: int | None = None
        self._unmoved_since: float | None = None
        self._stall: Stall | None = None

    def refusal(self) -> Unavailable | None:
        """The 503 a write gets now, or None."""
        if self.stall_s <= 0:
            return None
        now = self.clock()
        if now >= self._next_look and self._lock.acquire(blocking=False):
            try:
                self._look(now)
                self._next_look = now + self.check_every_s
            finally:
                self._lock.release()
        stall = self._stall
        return stall.refusal() if stall is not None else None

    def _look(self, now: float) -> None:
        try:
            head, position = self.positions.head(), self.positions.position()
        except Exception as error:  # noqa: BLE001 - an unreachable store is the database breaker's answer
            log.debug("outbox gate: positions not read (%s)", type(error).__name__)
            return
        was_stalled = self._stall is not None
        if position <= 0 or head <= position or position != self._seen_position:
            # never published, nothing waiting, or the relay moved: the stall clock starts again
            self._seen_position, self._unmoved_since, self._stall = position, now, None
        elif self._unmoved_since is not None and now - self._unmoved_since >= self.stall_s:
            self._stall = Stall(now - self._unmoved_since, head, position)
        if self._stall is not None and not was_stalled:
            log.error("writes refused: the relay has published nothing for %.0f s while events wait "
                      "(position %d, head %d)", self._stall.waited_s, position, head)
        elif was_stalled and self._stall is None:
            log.warning("writes accepted again: the relay moved (position %d, head %d)", position, head)
