"""The ledger's read side, its one public port: the projection into the view, the queries over it,
read-your-writes waiting, and the pure rules the audit replay shares.

Who uses what:

- the projector (``ido project``) runs ``balances_projection()``;
- the HTTP routes and the dashboard ask ``open_queries(engine)`` (a ``LedgerQueries``) for balances,
  national totals, SiSa, the journal, the years and names, and wait with ``wait_for_event``;
- the audit replays the topics with ``effects_of`` and shapes its answers with ``balance_figures``
  and ``national_answer``, so its balances cannot drift from the live ones.

Inside: ``movements.py`` and ``answers.py`` are pure; SQLAlchemy lives in ``sql/`` alone (view tables,
projection, queries, the read-your-writes poller). Only this module may be imported from outside
the package, and only it from outside the ledger; `lint-imports` checks both (issue 14).
"""

from __future__ import annotations

from sqlalchemy import Engine

from services.ledger.read_side.answers import (
    SISA_INDICATOR_PREFIX,
    PointInTime,
    balance_columns,
    balance_figures,
    flat_balance,
    national_answer,
)
from services.ledger.read_side.movements import LOOKUPS, Effects, Original, Refused, effects_of
from services.ledger.read_side.sql.projection import BalancesProjection
from services.ledger.read_side.sql.queries import LedgerQueries
from services.ledger.read_side.sql.view import PROJECTION_NAME


def balances_projection() -> BalancesProjection:
    """The projection the projector runs: the three topics into the view's tables."""
    return BalancesProjection()


def open_queries(engine: Engine) -> LedgerQueries:
    """The queries over the view in ``engine``; creates its tables if they are missing."""
    return LedgerQueries(engine)


__all__ = [
    "LOOKUPS",
    "PROJECTION_NAME",
    "SISA_INDICATOR_PREFIX",
    "BalancesProjection",
    "Effects",
    "LedgerQueries",
    "Original",
    "PointInTime",
    "Refused",
    "balance_columns",
    "balance_figures",
    "balances_projection",
    "effects_of",
    "flat_balance",
    "national_answer",
    "open_queries",
]
