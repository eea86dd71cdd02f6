"""Read-your-writes: which event ids the ledger's own event store recorded, and whose books they touch.

A read with ``includes_event_id`` may hold a server thread while it waits for its event to be
projected. It waits only for an event the ledger recorded and the caller may read; every other id
is answered at once (docs/decisions.md, "Hardening (issue 16): bounded"). The event store keeps
``event_id`` inside each stored event's state, where no index can find it, so the write side
writes each recorded event's id and municipality here, right after the save: one row per event,
one statement per saved batch (the group commit's batch too).

The row comes after the event's commit: an event whose row was lost (a crash between the two) is
still answered, once projected, from the view; its read only does not wait.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Column, Engine, MetaData, String, Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

recorded_metadata = MetaData()

recorded_events = Table(
    "ledger_recorded_events",
    recorded_metadata,
    Column("event_id", String(36), primary_key=True),
    Column("municipality_code", String(6), nullable=True),
)


class RecordedEvents:
    """The ledger's recorded event ids (in the service's own database, beside the idempotency keys)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        recorded_metadata.create_all(engine)
        self._find = select(recorded_events.c.municipality_code).where(
            recorded_events.c.event_id == bindparam("event_id")
        )

    def record(self, owners: Iterable[tuple[str, str | None]]) -> None:
        """``(event_id, municipality_code)`` of events just stored."""
        rows = [{"event_id": event_id, "municipality_code": code} for event_id, code in owners]
        if not rows:
            return
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(recorded_events), rows)
        except IntegrityError:  # a batch saved again after a conflict: its rows are there
            for row in rows:
                try:
                    with self.engine.begin() as connection:
                        connection.execute(insert(recorded_events), [row])
                except IntegrityError:
                    pass

    def owner_of(self, event_id: str) -> tuple[bool, str | None]:
        """(recorded here, its municipality: None for an event of no one municipality)."""
        with self.engine.connect() as connection:
            row = connection.execute(self._find, {"event_id": event_id}).first()
        return (False, None) if row is None else (True, row.municipality_code)

