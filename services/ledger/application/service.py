"""The ledger as its HTTP modules reach it: the write side's application and the read side's queries.

The entrypoint builds one per app (``definition.py``) and keeps it in ``app.extensions["ledger"]``;
the routes and the dashboard take what they need from it and never build either side themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.ledger.application.app import LedgerApplication
from services.ledger.read_side import LedgerQueries


@dataclass
class LedgerService:
    application: LedgerApplication
    queries: LedgerQueries
    read_your_writes_timeout_ms: int
    """How long a read with ``includes_event_id`` waits for its event to be projected."""
