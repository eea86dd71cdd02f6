"""The ledger as its HTTP modules reach it: the write side's application and the read side's queries.

The entrypoint builds one per app (``definition.py``) and keeps it in ``app.extensions["ledger"]``;
the routes and the dashboard take what they need from it and never build either side themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.common.errors import Unavailable
from services.ledger.application.app import LedgerApplication
from services.ledger.read_side import LedgerQueries


@dataclass
class LedgerService:
    application: LedgerApplication
    queries: LedgerQueries
    read_your_writes_timeout_ms: int
    """How long a read with ``includes_event_id`` waits for its event to be projected."""

    def wait_for_event(self, event_id: str, may_read: Callable[[str | None], bool]) -> None:
        """Returns once the event is projected. ``may_read(code)``: the caller may read the books of
        ``code`` (``None``: an event of no one municipality, such as the national frame).

        Waits (a server thread, at most ``read_your_writes_timeout_ms``, at most
        ``IDO_READ_YOUR_WRITES_MAX_WAITERS`` at once) only for an event the ledger's event store recorded
        and the caller may read. Any other id is answered at once: projected and readable, as read;
        else 503 with Retry-After, the same answer for an id no one recorded, an event of another
        municipality and an event of payments or bridge not projected yet (known only once projected:
        the ledger cannot tell it from an unknown id), so the answer reveals nothing of others' books.
        """
        recorded, owner = self.application.recorded_events.owner_of(event_id)
        projected, touched = self.queries.projected_event(event_id)  # asked always: the same work for every id
        if recorded and may_read(owner):
            self.queries.wait_for_event(event_id, self.read_your_writes_timeout_ms)
            return
        if projected and any(may_read(code) for code in (touched or {None})):
            return
        raise Unavailable(
            f"no event {event_id} that you may read is projected; the ledger waits only for its own events "
            "(expenditures, reversals, closings, declarations), an event of payments or bridge counts once "
            "projected: retry after Retry-After",
            retry_after_s=1,
            field="includes_event_id",
        )
