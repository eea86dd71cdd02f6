"""The ledger's public read side: the one module of the ledger that other packages may import.

The audit replays the topics with the live projection's own rules, so that its balances cannot drift
from the ledger's: ``effects_of`` turns an event into money movements, ``balance_figures`` and
``national_answer`` give the answers their shape. Everything else under ``services/ledger/`` is the
ledger's own; `lint-imports` fails when another package imports it (issue 14).
"""

from __future__ import annotations

from services.ledger.application.movements import LOOKUPS, Effects, Original, Refused, effects_of
from services.ledger.application.queries import SISA_INDICATOR_PREFIX, PointInTime, balance_figures, national_answer

__all__ = [
    "LOOKUPS",
    "SISA_INDICATOR_PREFIX",
    "Effects",
    "Original",
    "PointInTime",
    "Refused",
    "balance_figures",
    "effects_of",
    "national_answer",
]
