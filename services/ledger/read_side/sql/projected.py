"""Read-your-writes: requests wait until their event is projected, one poller for all of them.

The projector is another process, so a waiting request can only learn of its event from the view
database. One query per waiting request every 50 ms made the waiting itself the load: at 200
postings/s a hundred waiting requests ran 2,000 queries/s and latency fed on itself (bench row 5).
Here one thread per server process asks for all waiting ids at once, every ``poll_interval_ms``,
and wakes the requests whose event it found; it stops when nobody waits.

Each waiting request holds a server thread, so at most ``max_waiters`` wait at once in a process
(``IDO_READ_YOUR_WRITES_MAX_WAITERS``); one more gets ``WaitersFull`` at once (503, Retry-After),
never a thread the other requests need.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from sqlalchemy import Engine, bindparam, select

from services.common.consumer import applied_events

log = logging.getLogger(__name__)

IDS_PER_QUERY = 500


class WaitersFull(Exception):
    """``max_waiters`` requests wait already in this process."""


class ProjectedEvents:
    def __init__(
        self, engine: Engine, projection_name: str, *, poll_interval_ms: int = 10, max_waiters: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.engine = engine
        self._clock = clock
        """Seconds, for the requests' timeouts (tests move it instead of waiting them out)."""
        self.max_waiters = max_waiters
        self.poll_interval_s = poll_interval_ms / 1000
        self._query = select(applied_events.c.event_id).where(
            applied_events.c.consumer == projection_name,
            applied_events.c.event_id.in_(bindparam("event_ids", expanding=True)),
        )
        self._changed = threading.Condition()
        self._waiting: Counter[str] = Counter()
        self._waiters = 0
        self._found: set[str] = set()
        self._polling = False
        self._generation = 0
        self._failure: tuple[int, Exception] | None = None
        self.polls = 0
        """Queries run so far (the tests read it)."""

    def wait(self, event_id: str, timeout_ms: int) -> bool:
        """True once the event is projected; False after ``timeout_ms``. Raises the view database's
        error if the poller hit one while this request waited."""
        deadline = self._clock() + timeout_ms / 1000
        with self._changed:
            if self._waiters >= self.max_waiters:
                raise WaitersFull(f"{self._waiters} requests wait for their events already")
            self._waiters += 1
            self._waiting[event_id] += 1
            try:
                if not self._polling:
                    self._polling = True
                    self._generation += 1
                    threading.Thread(target=self._poll, args=(self._generation,), daemon=True).start()
                generation = self._generation
                while event_id not in self._found:
                    if self._failure is not None and self._failure[0] == generation:
                        raise self._failure[1]
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        break
                    self._changed.wait(remaining)
                return event_id in self._found
            finally:
                self._waiters -= 1
                self._waiting[event_id] -= 1
                if not self._waiting[event_id]:
                    del self._waiting[event_id]
                    self._found.discard(event_id)

    def _poll(self, generation: int) -> None:
        try:
            while True:
                with self._changed:
                    wanted = [event_id for event_id in self._waiting if event_id not in self._found]
                    if not wanted:
                        self._polling = False
                        return
                found: list[str] = []
                with self.engine.connect() as connection:
                    for start in range(0, len(wanted), IDS_PER_QUERY):
                        chunk = wanted[start : start + IDS_PER_QUERY]
                        found.extend(connection.execute(self._query, {"event_ids": chunk}).scalars())
                self.polls += 1
                if found:
                    with self._changed:
                        self._found.update(found)
                        self._changed.notify_all()
                time.sleep(self.poll_interval_s)
        except Exception as error:  # noqa: BLE001 - handed to the requests waiting now; the next one polls anew
            log.warning("read-your-writes poller stopped: %s", error)
            with self._changed:
                self._failure = (generation, error)
                self._polling = False
                self._changed.notify_all()
