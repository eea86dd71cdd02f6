"""Read-your-writes: requests wait until their event is projected, one poller for all of them.

The projector is another process, so a waiting request can only learn of its event from the view
database. One query per waiting request every 50 ms made the waiting itself the load: at 200
postings/s a hundred waiting requests ran 2,000 queries/s and latency fed on itself (bench row 5).
Here one thread per server process asks for all waiting ids at once, every ``poll_interval_ms``
(the projector's own duplicate check: one statement, the ids as one array on PostgreSQL), and wakes
the requests whose event it found, each alone; it stops when nobody waits.

Each waiting request holds a server thread, so at most ``max_waiters`` wait at once in a process
(``IDO_READ_YOUR_WRITES_MAX_WAITERS``); one more gets ``WaitersFull`` at once (503, Retry-After),
never a thread the other requests need.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from services.common.consumer import OffsetStore

log = logging.getLogger(__name__)

class WaitersFull(Exception):
    """``max_waiters`` requests wait already in this process."""


@dataclass(eq=False)
class _Waiter:
    """One waiting request: woken alone, when its event is found (or the poller failed)."""

    woken: threading.Event = field(default_factory=threading.Event)
    found: bool = False


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
        self._applied = OffsetStore(engine, projection_name)
        self._lock = threading.Lock()
        self._waiting: dict[str, list[_Waiter]] = {}
        """The requests waiting, by the event they wait for; the poller takes out those it found."""
        self._waiters = 0
        self._polling = False
        self._generation = 0
        self._failure: tuple[int, Exception] | None = None
        self.polls = 0
        """Queries run so far (the tests read it)."""

    def wait(self, event_id: str, timeout_ms: int) -> bool:
        """True once the event is projected; False after ``timeout_ms``. Raises the view database's
        error if the poller hit one while this request waited."""
        deadline = self._clock() + timeout_ms / 1000
        waiter = _Waiter()
        with self._lock:
            if self._waiters >= self.max_waiters:
                raise WaitersFull(f"{self._waiters} requests wait for their events already")
            self._waiters += 1
            self._waiting.setdefault(event_id, []).append(waiter)
            if not self._polling:
                self._polling = True
                self._generation += 1
                threading.Thread(target=self._poll, args=(self._generation,), daemon=True).start()
            generation = self._generation
        try:
            # Each request waits on its own flag: a poll that finds some events wakes their requests only
            # (one condition for all woke every waiting thread at every such poll: ~100 a second, each time
            # every one of up to 60 threads of a worker; issue 17, row 5).
            while not waiter.woken.is_set():
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                waiter.woken.wait(remaining)
            with self._lock:
                if waiter.found:
                    return True
                if self._failure is not None and self._failure[0] == generation:
                    raise self._failure[1]
                return False
        finally:
            with self._lock:
                self._waiters -= 1
                others = self._waiting.get(event_id)
                if others is not None and waiter in others:
                    others.remove(waiter)
                    if not others:
                        del self._waiting[event_id]

    def _poll(self, generation: int) -> None:
        try:
            while True:
                with self._lock:
                    wanted = list(self._waiting)
                    if not wanted:
                        self._polling = False
                        return
                with self.engine.connect() as connection:
                    found = self._applied.applied_before(connection, wanted)
                self.polls += 1
                if found:
                    with self._lock:
                        for event_id in found:
                            for waiter in self._waiting.pop(event_id, ()):
                                waiter.found = True
                                waiter.woken.set()
                time.sleep(self.poll_interval_s)
        except Exception as error:  # noqa: BLE001 - handed to the requests waiting now; the next one polls anew
            log.warning("read-your-writes poller stopped: %s", error)
            with self._lock:
                self._failure = (generation, error)
                self._polling = False
                for waiters in self._waiting.values():
                    for waiter in waiters:
                        waiter.woken.set()
