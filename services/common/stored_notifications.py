"""Every stored event of an event store after a position, read page by page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from eventsourcing.persistence import Notification


def notifications_after(recorder: Any, after: int = 0, *, page: int = 1000) -> Iterator[Notification]:
    """The notifications after position ``after``, in order, until a read finds none. Each page starts after the
    last id read, never at ``after`` + n: PostgreSQL's notification ids may have gaps."""
    position = after
    while notifications := recorder.select_notifications(start=position, limit=page, inclusive_of_start=False):
        yield from notifications
        position = notifications[-1].id
