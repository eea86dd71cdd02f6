"""The ledger as its HTTP modules reach it: the write side's application and the read side's queries.

The entrypoint builds one per app (``definition.py``) and keeps it in ``app.extensions["ledger"]``;
the routes and the dashboard take what they need from it and never build either side themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from services.common.errors import Unavailable
from services.common.principal_limit import PerPrincipalLimit
from services.ledger.application.app import LedgerApplication
from services.ledger.read_side import LedgerQueries


@dataclass
class LedgerService:
    application: LedgerApplication
    queries: LedgerQueries
    read_your_writes_timeout_ms: int
    """How long a read with ``includes_event_id`` waits for its event to be projected."""
    unanswered_per_minute: int = 120
    """``IDO_READ_YOUR_WRITES_UNANSWERED_PER_MINUTE``: reads naming an event the ledger cannot answer for
    (503) one caller may make in any 60 s; past it, 429 with the window's Retry-After."""
    unanswered: PerPrincipalLimit = field(init=False)

    def __post_init__(self) -> None:
        self.unanswered = PerPrincipalLimit(
            self.unanswered_per_minute,
            what="reads naming an event the ledger cannot answer for",
            setting="IDO_READ_YOUR_WRITES_UNANSWERED_PER_MINUTE",
            consequence="nothing was read",
        )

    def wait_for_event(self, event_id: str, may_read: Callable[[str | None], bool], caller_key: str) -> None:
        """Returns once the event is projected. ``may_read(code)``: the caller may read the books of
        ``code`` (``None``: an event of no one municipality, such as the national frame).

        Waits (a server thread, at most ``read_your_writes_timeout_ms``, at most
        ``IDO_READ_YOUR_WRITES_MAX_WAITERS`` at once) only for an event the ledger's event store recorded
        and the caller may read. Any other id is answered at once: projected and readable, as read;
        else 503 with Retry-After, the same answer for an id no one recorded, an event of another
        municipality and an event of payments or bridge not projected yet (known only once projected:
        the ledger cannot tell it from an unknown id), so the answer reveals nothing of others' books.

        A caller past ``unanswered_per_minute`` such 503s in 60 s (``caller_key``: the verified principal)
        gets 429 at once, with a Retry-After up to the window's end: a client that keeps naming events it
        cannot have is slowed down to a trickle instead of costing the others' latency (the read-your-writes
        flood test, tests/resilience).
        """
        if self.unanswered.exhausted(caller_key):
            raise self.unanswered.refusal(caller_key)
        recorded, owner = self.application.recorded_events.owner_of(event_id)
        if recorded and may_read(owner):
            # The read after a posting waits with the poller, which asks for the event: no query of its own
            # (issue 17, row 5). Only an id the caller may read takes this way, so that its answer comes sooner
            # tells the caller nothing it did not know.
            self.queries.wait_for_own_event(event_id, self.read_your_writes_timeout_ms)
            return
        projected, touched = self.queries.projected_event(event_id)  # the same work for every other id
        if projected and any(may_read(code) for code in (touched or {None})):
            return
        self.unanswered.count(caller_key)
        raise Unavailable(
            f"no event {event_id} that you may read is projected; the ledger waits only for its own events "
            "(expenditures, reversals, closings, declarations), an event of payments or bridge counts once "
            "projected: retry after Retry-After",
            retry_after_s=1,
            field="includes_event_id",
        )
