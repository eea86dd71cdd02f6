"""Read-your-writes: which event ids the ledger's own event store recorded, and whose books they touch.

A read with ``includes_event_id`` may hold a server thread while it waits for its event to be
projected. It waits only for an event the ledger recorded and the caller may read; every other id
is answered at once (docs/decisions.md, "Hardening (issue 16): bounded"). The event store keeps
``event_id`` inside each stored event's state, where no index can find it, so each save writes its
events' ids and municipality into this table, in the event store's database and in the save's own
transaction (``side_rows``, services/common/side_rows.py; issue 17: a second commit per save before):
a row exists exactly when its event is stored.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Column, Engine, MetaData, String, Table, bindparam, select

from services.common.side_rows import SideRows

recorded_metadata = MetaData()

recorded_events = Table(
    "ledger_recorded_events",
    recorded_metadata,
    Column("event_id", String(36), primary_key=True),
    Column("municipality_code", String(6), nullable=True),
)


class RecordedEvents:
    """The ledger's recorded event ids (in its event store's database, which ``engine`` opens)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        recorded_metadata.create_all(engine)
        self._find = select(recorded_events.c.municipality_code).where(
            recorded_events.c.event_id == bindparam("event_id")
        )

    @staticmethod
    def rows(owners: Iterable[tuple[str, str | None]]) -> SideRows:
        """The rows of ``(event_id, municipality_code)`` of events being saved, for the save's transaction."""
        return SideRows(recorded_events.name, ("event_id", "municipality_code"), list(owners))

    def owner_of(self, event_id: str) -> tuple[bool, str | None]:
        """(recorded here, its municipality: None for an event of no one municipality)."""
        with self.engine.connect() as connection:
            row = connection.execute(self._find, {"event_id": event_id}).first()
        return (False, None) if row is None else (True, row.municipality_code)

