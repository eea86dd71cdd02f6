"""What every HTTP request opens, closes and accounts for, whichever way it is answered: by Flask's hooks
(services/common/http.py) or by a route's fast path (services/common/fast_path.py).

Opened: the request's id (``X-Request-Id``, accepted or made; every log line of the request carries it), its
start, the list of events it records (for its one access-log line) and its time budget in the event store's
retries. Accounted for: one metric observation and one access-log line.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import Token
from dataclasses import dataclass
from typing import Any

from services.common import outage_budget
from services.common.auth import Principal
from services.common.direct_log import log_direct
from services.common.logging_setup import REQUEST_ID
from services.common.observability import Operations
from services.common.recorded_log import begin_request, end_request, event_fields, request_events

access_log = logging.getLogger("ido.http")

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
QUIET_ROUTES = ("/healthz", "/readyz", "/metrics", "/docs/assets/<path:name>", "/.well-known/ido-keyset.json")
"""Probes and scrapes: counted in the metrics, logged at DEBUG only."""


@dataclass
class RequestFrame:
    request_id: str
    started_s: float
    """``time.perf_counter()`` when the request was opened."""
    _request_id_token: Token[Any]
    _recorded_token: Token[Any]
    _outage_token: Token[Any]

    @classmethod
    def open(cls, offered_id: str) -> RequestFrame:
        """``offered_id``: the request's ``X-Request-Id`` ("" when it has none); one of another shape is replaced."""
        request_id = offered_id if REQUEST_ID_PATTERN.fullmatch(offered_id) else uuid.uuid4().hex
        return cls(request_id, time.perf_counter(), REQUEST_ID.set(request_id), begin_request(), outage_budget.arm())

    def seconds(self) -> float:
        return time.perf_counter() - self.started_s

    def close(self) -> None:
        end_request(self._recorded_token)
        outage_budget.disarm(self._outage_token)
        try:
            REQUEST_ID.reset(self._request_id_token)
        except ValueError:  # closed in another context: the value dies with that context
            pass


def account(
    operations: Operations, *, method: str, route: str, path: str, status: int, frame: RequestFrame | None,
    caller: Principal | None,
) -> None:
    """The request's metric and its one access-log line (``frame`` is None for a request refused before it was
    opened: a body too deep or too long)."""
    seconds = frame.seconds() if frame is not None else 0.0
    operations.observe_request(method, route, status, seconds)
    level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
    if status >= 500:
        level = logging.WARNING
    if not access_log.isEnabledFor(level):
        return
    fields: dict[str, Any] = {
        "service": operations.service,
        "request_id": frame.request_id if frame is not None else None,
        "method": method,
        "route": route,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "role": caller.role if caller else None,
        "municipality": caller.municipality_code if caller else None,
    }
    recorded = request_events()
    if recorded:  # the request's one line names what it recorded (services/common/recorded_log.py)
        fields.update(event_fields(recorded))
    log_direct(access_log, level, "%s %s %s", (method, route, status), fields)
