"""Which events a request recorded, for its one log line (``http.py``), or a line of their own.

Every save's observers (``observability.Operations``) ``note`` the events it recorded. During an
HTTP request they are kept for the request's access-log line, which names them (``event_ids``,
``event_types``, ``stream_ids``): one line per request, not one for the request and one per save.
Outside a request (a command, the demo) a save gets its own ``events recorded`` line, as before.
A group commit saves the postings of several requests in one thread (``group_commit.py``): there
the events are noted for the request that owns each one (``noted_by_owners``, ``owner_notes``), so
each request's line names its own events and no other's.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("ido.events")

_NOTED: contextvars.ContextVar[list[Any] | dict[int, str | None] | None] = contextvars.ContextVar(
    "ido_recorded_events", default=None
)


def begin_request() -> contextvars.Token[Any]:
    """From here on this context's saves are noted for its request's line (``request_events``)."""
    return _NOTED.set([])


def end_request(token: contextvars.Token[Any]) -> None:
    try:
        _NOTED.reset(token)
    except ValueError:  # torn down in another context: the value dies with that context
        pass


def request_events() -> list[Any]:
    """The events this request recorded so far."""
    noted = _NOTED.get()
    return noted if isinstance(noted, list) else []


def event_fields(events: Sequence[Any]) -> dict[str, list[str]]:
    """What a log line says of recorded events: their ids, types and streams."""
    return {
        "event_ids": [str(getattr(e, "event_id", "")) for e in events],
        "event_types": [getattr(type(e), "EVENT_TYPE", type(e).__name__) for e in events],
        "stream_ids": sorted({str(getattr(e, "stream_id", "")) for e in events}),
    }


def note(events: Sequence[Any], service: str | None) -> None:
    """A save recorded ``events`` (of ``service``): kept for the request, or logged on a line."""
    if not events:
        return
    noted = _NOTED.get()
    if isinstance(noted, list):
        noted.extend(events)
    elif isinstance(noted, dict):
        for event in events:
            noted[id(event)] = service
    else:
        log.info("events recorded", extra={"service": service, **event_fields(events)})


@contextmanager
def noted_by_owners() -> Iterator[dict[int, str | None]]:
    """Within: what is noted is kept aside (event id() -> service), for ``owner_notes`` to hand on."""
    noted: dict[int, str | None] = {}
    token = _NOTED.set(noted)
    try:
        yield noted
    finally:
        _NOTED.reset(token)


def owner_notes(events: Sequence[Any], service: str | None) -> None:
    """Notes, in the owning request's context, events another thread saved for it."""
    note(events, service)
