"""A write answered only once its events are on Kafka (``IDO_ANSWER_AFTER_PUBLISHED_MS``, off by default).

The outbox relay publishes a stored event within its lag (a poll and a send). A store lost in that
moment (its database dropped, its disk gone) takes with it the events it had not published, which the
clients were answered 2xx for: the recovery from the topics (`ido recover store`) cannot bring them back.
With this setting a write that recorded events waits, after its work, until the service's relay position
(its tracking row, in the same store) reaches the store's head as read after the write; past the wait, or
with the store unreachable, it is answered 503 with Retry-After instead: the events are stored or lost, and
a retry with the same Idempotency-Key (or a read of the history) tells which, as after any unknown answer.
The price: every write waits for the relay, and writes are refused while the broker is away, where they
are otherwise answered 201 and kept in the store's outbox (issue 19, Must show 2).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Flask, Response, request

from services.common.blueprint import WRITE_METHODS
from services.common.errors import Unavailable
from services.common.readiness import RelayWatch
from services.common.recorded_log import request_events

POLL_S = 0.01
"""How often a waiting write reads the relay's position: its lag is a 50 ms poll and a send."""


def answer_after_published(app: Flask, relay: RelayWatch, wait_ms: int, error_response: Any) -> None:
    """Holds each write's 2xx answer until its events are published, for up to ``wait_ms``."""
    wait_s = wait_ms / 1000

    @app.after_request
    def _published(response: Response) -> Response:
        if request.method not in WRITE_METHODS or not 200 <= response.status_code < 300 or not request_events():
            return response
        if published(relay, wait_s):
            return response
        return error_response(
            503, "unavailable",
            "recorded, but not yet confirmed on Kafka: retry with the same Idempotency-Key, or read it back",
            error=Unavailable("not yet published", retry_after_s=1),
        )


def published(relay: RelayWatch, wait_s: float) -> bool:
    """True once the relay's position reached the store's head as read now; False past ``wait_s`` or when
    the store cannot be read. Bounded: a poll every ``POLL_S`` until the deadline."""
    deadline = time.monotonic() + wait_s
    try:
        head = relay.head()
        for _attempt in range(int(wait_s / POLL_S) + 2):
            if relay.position() >= head:
                return True
            if time.monotonic() >= deadline:
                return False
            threading.Event().wait(POLL_S)  # the relay, another process, moves the position
    except Exception:  # noqa: BLE001 - the store unreachable: whether its events get out is unknown
        return False
    return False
