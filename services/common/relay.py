"""The outbox relay: stored events, in notification order, to their Kafka topic.

Its position is recorded (eventsourcing tracking table, same database as the events) only after
the broker has acknowledged every message up to it. A crash in between re-sends a few events;
consumers drop those by ``event_id``. Nothing is ever skipped: we read ids greater than the last
recorded one, never "last + 1", since PostgreSQL ids can have gaps.

One page is kept in flight: page N+1 is sent before page N's acknowledgements are awaited, so the
producer never stands idle while the relay waits (bench row 2: the flush after each page was ~12 % of
the run, with nothing sent meanwhile). The position still moves only past acknowledged pages, in
order; if page N fails, N+1 is forgotten too and both are read again from the recorded position. The
order on a partition is the idempotent producer's, as it already was for the batches within one page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import Tracking, TrackingRecorder
from kafka import KafkaProducer

from services.common.relay_pages import LocalPages, WorkerPages
from services.common.signing import Sealer

log = logging.getLogger(__name__)

PAGE_BATCHES = 4
"""Seal batches (``batch_size`` events each) read, sent and acknowledged as one page, with one wait for the
broker and one tracking commit per page instead of per batch (bench row 2). A crash re-sends at most a page."""


@dataclass(frozen=True)
class _InFlight:
    """A page sent and not yet recorded: its messages' futures and the position to record once all are acked."""

    last_id: int
    futures: list[Any]


def relay_name(topic: str) -> str:
    """The tracking name a relay records its position under (readiness and the audit read it too)."""
    return f"relay:{topic}"


class OutboxRelay:
    def __init__(
        self,
        app: Application,
        producer: KafkaProducer,
        topic: str,
        *,
        batch_size: int = 500,
        page_batches: int = PAGE_BATCHES,
        name: str | None = None,
        producer_factory: Callable[[], KafkaProducer] | None = None,
        flush_timeout_s: float = 30.0,
        sealer: Sealer | None = None,
        pages: LocalPages | WorkerPages | None = None,
    ):
        self.sealer = sealer
        self.app = app
        self.producer = producer
        self.producer_factory = producer_factory
        self.flush_timeout_s = flush_timeout_s
        self.topic = topic
        self.batch_size = batch_size
        self.page_size = batch_size * page_batches
        self.name = name or relay_name(topic)
        self.tracking: TrackingRecorder = app.factory.tracking_recorder()
        self.pages = pages or LocalPages(app, batch_size)
        self._in_flight: _InFlight | None = None

    def position(self) -> int:
        return self.tracking.max_tracking_id(self.name) or 0

    def run_once(self) -> int:
        """Sends the next page (up to ``page_batches`` seal batches), then awaits the page sent before it and
        records that one's position; returns how many events it sent. 0 means nothing is left to send, and
        then everything sent before is acknowledged and recorded."""
        # Forgotten if anything below fails: the next round reads again from the recorded position.
        in_flight, self._in_flight = self._in_flight, None
        after = in_flight.last_id if in_flight is not None else self.position()
        page = self.pages.page(after, self.page_size, self.sealer)
        futures: list[Any] = []
        if page.messages:
            # The next page is made (by the worker) while this one is sent; used only if the relay stands there.
            self.pages.prefetch(page.last_id, self.page_size, self.sealer)
            send, topic = self.producer.send, self.topic
            futures = [send(topic, key=key, value=value, headers=headers) for key, value, headers in page.messages]
        if in_flight is not None:
            if not futures:
                self.producer.flush(timeout=self.flush_timeout_s)  # nothing behind it: no linger to wait out
            self._await_acks(in_flight.futures)
            self.tracking.insert_tracking(Tracking(self.name, in_flight.last_id))
        if futures:
            self._in_flight = _InFlight(page.last_id, futures)
        return len(page.messages)

    def _await_acks(self, futures: list[Any]) -> None:
        """Returns once every message is acknowledged; raises if the broker refused one or never answered.
        Bounded: a broker that went away must not hold the relay forever; the page is sent again."""
        deadline = time.monotonic() + self.flush_timeout_s
        for future in futures:
            if not future.succeeded():  # acknowledged ones need no get(), which builds their metadata
                future.get(timeout=max(0.0, deadline - time.monotonic()))

    def run_forever(self, stop: threading.Event, poll_interval_ms: int = 50) -> None:
        while not stop.is_set():
            try:
                published = self.run_once()
            except Exception as error:  # noqa: BLE001 - broker or store down: wait and retry, never skip
                log.warning("relay %s: %s; retrying", self.name, error)
                published = 0
                self._renew_producer()
                stop.wait(1.0)
            if not published:
                stop.wait(poll_interval_ms / 1000)

    def close(self) -> None:
        """Stops the page worker (if any) and the producer; the store is the caller's."""
        self.pages.close()
        self.producer.close()

    def _renew_producer(self) -> None:
        """After a failed batch, a fresh producer: the old one may hold stale connections and batches."""
        if self.producer_factory is None:
            return
        close_producer(self.producer, timeout_s=1, name=self.name)
        try:
            self.producer = self.producer_factory()
        except Exception as error:  # noqa: BLE001 - broker still away: the next round tries again
            log.warning("relay %s: no new producer yet: %s", self.name, error)


def close_producer(producer: KafkaProducer, timeout_s: float, name: str) -> None:
    """Closes a producer whose broker may be away, its network thread and sockets included.

    kafka-python's ``close`` flushes first and raises while records are pending, before it stops its network
    thread: each renewal after a failed batch left a thread and its sockets behind (``make soak``: a relay's
    threads and open files grew after every loss of two brokers). The sender's ``force_close`` drops the
    pending records (they are still in the store; the relay sends them again) and ends the thread."""
    try:
        producer.close(timeout=timeout_s)
        return
    except Exception as error:  # noqa: BLE001 - closing a broken producer may fail; it is stopped below
        log.info("relay %s: closing the old producer: %s", name, error)
    sender = getattr(producer, "_sender", None)  # kafka-python 3.x: no public way to drop pending records
    if sender is not None:
        sender.force_close()
        sender.join(timeout_s)
    try:
        producer.close(timeout=0)
    except Exception as error:  # noqa: BLE001 - its thread has ended; what is left is garbage
        log.info("relay %s: the old producer's last close: %s", name, error)
