"""The projector's bulk insert (services/common/bulk_insert.py) stores what SQLAlchemy's insert stores,
and a refusal by the database is SQLAlchemy's ``IntegrityError`` / ``DataError``, which the consumer
dead-letters, on SQLite (executemany) and PostgreSQL (COPY) alike."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import DataError, IntegrityError

from services.common.adapters.sql import create_sql_engine
from services.common.bulk_insert import BulkInsert
from services.common.config import Settings
from services.ledger.read_side.sql.view import journal, view_metadata

ROW = {column.name: None for column in journal.columns} | {
    "event_id": "e-1",
    "line": 1,
    "event_type": "ExpenditureRecorded",
    "kind": "spent",
    "municipality_code": "GM0363",
    "year": 2024,
    "amount_cents": 12_345_678_901,
    "booked_on": date(2024, 3, 1),
    "spent_on": date(2024, 2, 29),
    "recorded_at": "2024-03-01T10:00:00.000000Z",
    "description": "tab\there, a newline\nand a backslash \\ and 'quotes'",
    "stream_id": "expenditure-1",
}


def test_rows_come_back_as_an_insert_would_store_them(settings: Settings) -> None:
    engine = create_sql_engine(settings.view_db_url)
    view_metadata.create_all(engine)
    bulk = BulkInsert(journal)
    with engine.begin() as connection:
        bulk(connection, [tuple(ROW[name] for name in bulk.columns)])
        connection.execute(insert(journal), [ROW | {"event_id": "e-2"}])
        bulk(connection, [])
    with engine.connect() as connection:
        rows = {row.event_id: dict(row._mapping) for row in connection.execute(select(journal))}
    assert rows["e-1"] == rows["e-2"] | {"event_id": "e-1"}
    assert rows["e-1"]["booked_on"] == date(2024, 3, 1)
    engine.dispose()


def test_a_refusal_is_sqlalchemys_and_leaves_the_transaction_usable(settings: Settings) -> None:
    engine = create_sql_engine(settings.view_db_url)
    view_metadata.create_all(engine)
    bulk = BulkInsert(journal)
    refusals: tuple[type[Exception], ...] = (IntegrityError, DataError)
    with engine.begin() as connection:
        bulk(connection, [tuple(ROW[name] for name in bulk.columns)])
        with pytest.raises(IntegrityError), connection.begin_nested():
            bulk(connection, [tuple(ROW[name] for name in bulk.columns)])  # the same key again
        if engine.dialect.name == "postgresql":  # SQLite does not hold a VARCHAR to its length
            too_long = ROW | {"event_id": "x" * 40}
            with pytest.raises(refusals), connection.begin_nested():
                bulk(connection, [tuple(too_long[name] for name in bulk.columns)])
        bulk(connection, [tuple((ROW | {"event_id": "e-3"})[name] for name in bulk.columns)])
    with engine.connect() as connection:
        assert sorted(connection.execute(select(journal.c.event_id)).scalars()) == ["e-1", "e-3"]
    engine.dispose()
