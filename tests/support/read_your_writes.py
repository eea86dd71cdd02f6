"""Reading with ``includes_event_id`` an event of payments or bridge: the ledger waits only for its own
events (docs/decisions.md, "Hardening (issue 16): bounded"), so such a read answers 503 until the
event is projected. A client retries; so do the tests, until a deadline."""

from __future__ import annotations

import threading
import time
from typing import Any

from flask.testing import FlaskClient


def get_once_projected(client: FlaskClient, url: str, headers: dict[str, str], timeout_s: float = 30.0) -> Any:
    """The first answer that is not 503, or the last 503 at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = client.get(url, headers=headers)
        if answer.status_code != 503 or time.monotonic() > deadline:
            return answer
        threading.Event().wait(0.05)  # the projector runs in another thread: ask again shortly
