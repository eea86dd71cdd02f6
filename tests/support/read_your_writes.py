"""Reading with ``includes_event_id`` an event of payments or bridge: the ledger waits only for its own
events (docs/decisions.md, "Hardening (issue 16): bounded"), so such a read answers 503 until the
event is projected. A client retries after the answer's Retry-After; so do the tests, until a deadline."""

from __future__ import annotations

import threading
import time
from typing import Any

from flask.testing import FlaskClient


def get_once_projected(client: FlaskClient, url: str, headers: dict[str, str], timeout_s: float = 30.0) -> Any:
    """The first answer that is not 503, or the last 503 at the deadline.

    Each retry waits the 503's Retry-After, as a client must: a client that asks faster is counted
    against ``IDO_READ_YOUR_WRITES_UNANSWERED_PER_MINUTE`` (120) and gets 429 once the projector takes
    longer than 6 s to start, as it did on a loaded CI machine (stop 43)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = client.get(url, headers=headers)
        remaining_s = deadline - time.monotonic()
        if answer.status_code != 503 or remaining_s <= 0:
            return answer
        retry_after_s = float(answer.headers.get("Retry-After", "1"))
        threading.Event().wait(min(retry_after_s, remaining_s))
