"""Read-your-writes: which event ids the ledger's own event store recorded, and whose books they touch.

A read with ``includes_event_id`` may hold a server thread while it waits for its event to be
projected. It waits only for an event the ledger recorded and the caller may read; every other id
is answered at once (docs/decisions.md, "Hardening (issue 16): bounded"). The event store keeps
``event_id`` inside each stored event's state, where no index can find it, so each save writes its
events' ids and municipality into this table, in the event store's database and in the save's own
transaction (``side_rows``, services/common/side_rows.py; issue 17: a second commit per save before):
a row exists exactly when its event is stored.

A process also remembers the owners of the events it recorded itself, once their save committed
(``remember``, the most recent ``remembered`` of them): a read after a posting comes back on the
poster's keep-alive connection, to the same server process, and finds the answer without a query
(issue 17, row 5). A recorded event never changes owner and is never unrecorded, so a remembered
answer cannot go stale; an id not remembered is asked of the table as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from itertools import islice

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

    def __init__(self, engine: Engine, *, remembered: int = 10_000):
        self.engine = engine
        self.remembered = remembered
        """How many of its own recorded events' owners this process keeps (the oldest go first)."""
        self._recent: dict[str, str | None] = {}
        self._recent_lock = threading.Lock()
        recorded_metadata.create_all(engine)
        self._find = select(recorded_events.c.municipality_code).where(
            recorded_events.c.event_id == bindparam("event_id")
        )

    @staticmethod
    def rows(owners: Iterable[tuple[str, str | None]]) -> SideRows:
        """The rows of ``(event_id, municipality_code)`` of events being saved, for the save's transaction."""
        return SideRows(recorded_events.name, ("event_id", "municipality_code"), list(owners))

    def remember(self, rows: SideRows) -> None:
        """The rows of a save that has committed (never before: a refused save's events were not recorded)."""
        with self._recent_lock:
            self._recent.update(rows.rows)  # (event_id, municipality_code) pairs
            excess = len(self._recent) - self.remembered
            if excess > 0:
                for event_id in list(islice(self._recent, excess)):
                    del self._recent[event_id]

    def owner_of(self, event_id: str) -> tuple[bool, str | None]:
        """(recorded here, its municipality: None for an event of no one municipality)."""
        try:
            return True, self._recent[event_id]
        except KeyError:
            pass
        with self.engine.connect() as connection:
            row = connection.execute(self._find, {"event_id": event_id}).first()
        return (False, None) if row is None else (True, row.municipality_code)

