"""On PostgreSQL the journal's library and grant indexes hold only the rows that name a library or a grant
(services/ledger/read_side/sql/view.py): a spending row, most of the journal, costs no entry in either. What must
hold with it: the reads that ask by library or by grant (the balances' bridging sums, the projector's grant rows)
can still be answered from those indexes, i.e. their predicates imply the indexes' ``IS NOT NULL``; a read
whose filter stopped implying it would fall back to scanning the whole journal."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event, text

from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from services.ledger.read_side.answers import PointInTime
from services.ledger.read_side.sql.projection import SqlBook
from services.ledger.read_side.sql.queries import LedgerQueries
from services.ledger.read_side.sql.view import view_metadata
from tests.support.infra import PostgresInfo

PARTIAL = {"ix_ledger_journal_library": "library_id", "ix_ledger_journal_grant": "grant_id"}


def _plans_of_reads_naming(engine: Engine, column: str, reads: list[Any]) -> list[str]:
    """Runs ``reads`` on ``engine`` and returns the plan of each journal statement they sent that names
    ``column``, planned with sequential scans priced out (an empty table would otherwise always be scanned)."""
    sent: list[tuple[str, Any]] = []

    def _capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        if "ledger_journal" in statement and column in statement and not statement.startswith("EXPLAIN"):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", _capture)
    try:
        for read in reads:
            read()
    finally:
        event.remove(engine, "before_cursor_execute", _capture)
    plans = []
    with engine.connect() as connection:
        connection.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in sent:
            rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters).scalars().all()
            plans.append("\n".join(rows))
    return plans


def test_the_reads_by_library_and_by_grant_can_use_the_partial_indexes(postgres_db: PostgresInfo) -> None:
    engine = create_sql_engine(load_settings(postgres_db.settings_env()).view_db_url)
    view_metadata.create_all(engine)
    with engine.connect() as connection:
        indexes = text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ledger_journal'")
        definitions = dict(connection.execute(indexes).all())
    for name, column in PARTIAL.items():
        assert definitions[name].endswith(f"WHERE ({column} IS NOT NULL)"), definitions[name]

    queries = LedgerQueries(engine)

    def _grant_rows() -> None:
        with engine.connect() as connection:
            SqlBook(connection).grant_by_day("grant-2024-GM0001", "GM0001")

    library_plans = _plans_of_reads_naming(engine, "library_id", [lambda: queries._bridge_sums(PointInTime())])
    grant_plans = _plans_of_reads_naming(engine, "grant_id", [_grant_rows])

    assert library_plans and grant_plans, "the reads sent no statement naming the column"
    assert all("ix_ledger_journal_library" in plan for plan in library_plans), library_plans
    assert all("ix_ledger_journal_grant" in plan for plan in grant_plans), grant_plans
    engine.dispose()
