"""Tables of the ledger's read model (view DB), written by the projection, read by the queries.

``ledger_journal`` holds every applied money movement as a signed delta with its booking date
(the payload's date) and its ``recorded_at`` (envelope), so every balance is a SQL sum, and a
balance at a date (``as_of``) or as known at a moment (``known_at``) is the same sum filtered.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Date, Index, Integer, MetaData, String, Table, Text

PROJECTION_NAME = "ledger-balances"

view_metadata = MetaData()

journal = Table(
    "ledger_journal",
    view_metadata,
    Column("event_id", String(36), primary_key=True),
    Column("line", Integer, primary_key=True, autoincrement=False),
    Column("event_type", String(60), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("municipality_code", String(6), nullable=True),
    Column("library_id", String(100), nullable=True),
    Column("grant_id", String(100), nullable=True),
    Column("year", Integer, nullable=True),
    Column("category", String(30), nullable=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("booked_on", Date, nullable=False),
    Column("recorded_at", String(27), nullable=False),
    # Spent rows only: the day the money was spent (the posting's booked_on), kept by the rows with
    # which a merger moves spending on its effective date; SiSa counts a spent row in this day's year.
    Column("spent_on", Date, nullable=True),
    Column("expenditure_id", String(36), nullable=True),
    Column("counterparty_id", String(100), nullable=True),
    Column("counterparty_name", String(200), nullable=True),
    Column("reference", String(100), nullable=True),
    Column("description", Text, nullable=True),
    Column("reverses_event_id", String(36), nullable=True),
    Column("stream_id", String(200), nullable=False),
)
Index("ix_ledger_journal_books", journal.c.municipality_code, journal.c.year, journal.c.kind)
# On PostgreSQL these two hold only the rows that name a library or a grant: a spending row (most rows) names
# neither, and its two NULL entries were index work in every journal insert (issue 17, twelfth round: ~25 %
# of the server's CPU an event applied). Their queries ask for a library or grant, so the planner may use
# them. Not on SQLite, where partial indexes measured slower (ninth round).
Index(
    "ix_ledger_journal_library", journal.c.library_id, journal.c.kind,
    postgresql_where=journal.c.library_id.is_not(None),
)
Index("ix_ledger_journal_grant", journal.c.grant_id, journal.c.kind, postgresql_where=journal.c.grant_id.is_not(None))

closings = Table(
    "ledger_closings",
    view_metadata,
    Column("municipality_code", String(6), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False),
    Column("closed_on", Date, nullable=False),
    Column("closed_by", String(20), nullable=False),
    Column("final_account", Boolean, nullable=False),
    Column("recorded_at", String(27), nullable=False),
)

after_close = Table(
    "ledger_after_close",
    view_metadata,
    # Postings and reversals applied after their year's YearClosed (movements.py, Effects.after_close):
    # their money is in the journal as every event's; this names them (balances, the audit).
    Column("event_id", String(36), primary_key=True),
    Column("event_type", String(60), nullable=False),
    Column("municipality_code", String(6), nullable=False),
    Column("year", Integer, nullable=False),
    Column("recorded_at", String(27), nullable=False),
)
Index("ix_ledger_after_close_books", after_close.c.municipality_code, after_close.c.year)

sisa_declarations = Table(
    "ledger_sisa_declarations",
    view_metadata,
    Column("municipality_code", String(6), primary_key=True),
    Column("accounts_year", Integer, primary_key=True, autoincrement=False),
    Column("grant_year", Integer, primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False),
    Column("final_account", Boolean, nullable=False),
    Column("declared_on", Date, nullable=False),
    Column("declared_by", String(20), nullable=False),
    Column("reason", Text, nullable=True),
    Column("recorded_at", String(27), nullable=False),
)

mergers = Table(
    "ledger_mergers",
    view_metadata,
    # One row per GrantTransferred: a chain of mergers passes a year's grants on from a middle code,
    # so (municipality_code, year) may repeat (the same successor each time).
    Column("event_id", String(36), primary_key=True),
    Column("municipality_code", String(6), nullable=False),
    Column("year", Integer, nullable=False),
    Column("successor_code", String(6), nullable=False),
    Column("effective_on", Date, nullable=False),
    Column("recorded_at", String(27), nullable=False),
)
Index("ix_ledger_mergers_from", mergers.c.municipality_code, mergers.c.year)
Index("ix_ledger_mergers_to", mergers.c.successor_code)

bridge_deadlines = Table(
    "ledger_bridge_deadlines",
    view_metadata,
    # One row per bridging frame event (set, amended): the account deadline as known at a moment is that
    # of the latest one recorded by then (movements.latest_deadline).
    Column("event_id", String(36), primary_key=True),
    Column("account_deadline", Date, nullable=False),
    Column("recorded_at", String(27), nullable=False),
)

bridge_accounts = Table(
    "ledger_bridge_accounts",
    view_metadata,
    # A library's final account of the bridging subsidy (the KB's service takes one per library; should
    # a topic hold a second, the latest recorded stands, as its bridge_settled figure does).
    Column("event_id", String(36), primary_key=True),
    Column("library_id", String(100), nullable=False),
    Column("submitted_on", Date, nullable=False),
    Column("account_deadline", Date, nullable=False),
    Column("late", Boolean, nullable=False),
    Column("recorded_at", String(27), nullable=False),
)

municipalities = Table(
    "ledger_municipalities",
    view_metadata,
    Column("municipality_code", String(6), primary_key=True),
    Column("name", String(200), nullable=False),
)

libraries = Table(
    "ledger_libraries",
    view_metadata,
    Column("library_id", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
)

KINDS = (
    "grant_frame",
    "awarded",
    "advance_paid",
    "spent",
    "settled",
    "settlement_reported",
    "reclaim_issued",
    "reclaim_received",
    "bridge_frame",
    "bridge_grant",
    "bridge_paid",
    "bridge_settled",
    "bridge_reclaim",
)
