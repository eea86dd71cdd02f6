"""The ledger's read side, its one public port: the projection into the view, the queries over it,
read-your-writes waiting, and the pure rules the audit replay shares.

Who uses what:

- the projector (``ido project``) runs ``balances_projection()``;
- the ledger's write side asks ``grant_years_in_view(url, open_years)`` whether a posting's grant
  year has an award and whether the municipality merged (issue 15);
- the write side saves the ids of its events in the save's transaction (``RecordedEvents.rows``, of
  ``recorded_events_in(url)``), which the reads with ``includes_event_id`` ask before they wait;
- the HTTP routes and the dashboard ask ``open_queries(engine)`` (a ``LedgerQueries``) for balances,
  national totals, SiSa, the journal, the years and names, and wait with ``wait_for_event``;
- the audit replays the topics with ``effects_of`` (its book answering ``Merger``, ``GrantOnDay`` and
  ``SpentOnDay`` questions as the live one) and shapes its answers with ``balance_figures``, ``national_answer``
  and the SiSa shapes (``sisa_lines``, ``sisa_answer``, ``sisa_status``), so its balances and SiSa
  figures cannot drift from the live ones.

Inside: ``movements.py`` and ``answers.py`` are pure; SQLAlchemy lives in ``sql/`` alone (view tables,
projection, queries, the read-your-writes poller). Only this module may be imported from outside
the package, and only it from outside the ledger; `lint-imports` checks both (issue 14).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import MappingProxyType

from sqlalchemy import Engine

from services.common.adapters.sql import create_read_engine
from services.ledger.read_side.answers import (
    PointInTime,
    after_close_figures,
    balance_columns,
    balance_figures,
    flat_balance,
    national_answer,
)
from services.ledger.read_side.movements import (
    ACCOUNT_STATUSES,
    GRANT_KINDS,
    LOOKUPS,
    BridgeAccounts,
    Effects,
    GrantOnDay,
    Merger,
    Original,
    Refused,
    SpentOnDay,
    effects_of,
    grant_on_days,
    latest_deadline,
    spent_on_days,
)
from services.ledger.read_side.sisa import (
    SISA_CSV_COLUMNS,
    Declaration,
    GrantFigures,
    sisa_answer,
    sisa_csv_rows,
    sisa_deadline,
    sisa_lines,
    sisa_status,
    spent_in_year,
)
from services.ledger.read_side.sql.grant_years import GrantYearsInView
from services.ledger.read_side.sql.projection import BalancesProjection
from services.ledger.read_side.sql.queries import LedgerQueries
from services.ledger.read_side.sql.recorded import RecordedEvents
from services.ledger.read_side.sql.view import PROJECTION_NAME


def balances_projection() -> BalancesProjection:
    """The projection the projector runs: the three topics into the view's tables."""
    return BalancesProjection()


def open_queries(
    engine: Engine, sisa_indicators: Mapping[int, tuple[str, ...]] = MappingProxyType({}), max_waiters: int = 2
) -> LedgerQueries:
    """The queries over the view in ``engine``; creates its tables if they are missing.
    ``sisa_indicators``: the setting ``IDO_SISA_INDICATORS`` (codes per grant year); ``max_waiters``:
    ``IDO_READ_YOUR_WRITES_MAX_WAITERS`` (reads waiting at once for their events, per process)."""
    return LedgerQueries(engine, sisa_indicators=sisa_indicators, max_waiters=max_waiters)


def recorded_events_in(events_db_url: str) -> RecordedEvents:
    """The ids of the events the ledger's event store recorded (in the event store's database, written
    in each save's transaction)."""
    return RecordedEvents(create_read_engine(events_db_url))


def grant_years_in_view(
    view_db_url: str, open_before_award: Collection[int] = (), mergers_reread_ms: int = 0
) -> GrantYearsInView:
    """What the write side asks before a posting: the award of its grant year, the municipality's merger
    (the mergers not known yet read again at most every ``mergers_reread_ms``)."""
    return GrantYearsInView(create_read_engine(view_db_url), open_before_award, mergers_reread_ms)


__all__ = [
    "ACCOUNT_STATUSES",
    "GRANT_KINDS",
    "LOOKUPS",
    "PROJECTION_NAME",
    "SISA_CSV_COLUMNS",
    "BalancesProjection",
    "BridgeAccounts",
    "Declaration",
    "Effects",
    "GrantFigures",
    "GrantOnDay",
    "GrantYearsInView",
    "LedgerQueries",
    "Merger",
    "Original",
    "PointInTime",
    "RecordedEvents",
    "Refused",
    "SpentOnDay",
    "after_close_figures",
    "balance_columns",
    "balance_figures",
    "balances_projection",
    "effects_of",
    "flat_balance",
    "grant_on_days",
    "grant_years_in_view",
    "latest_deadline",
    "national_answer",
    "open_queries",
    "recorded_events_in",
    "sisa_answer",
    "sisa_csv_rows",
    "sisa_deadline",
    "sisa_lines",
    "sisa_status",
    "spent_in_year",
    "spent_on_days",
]
