"""The projector's bulk insert (services/common/bulk_insert.py) stores what SQLAlchemy's insert stores,
and a refusal by the database is SQLAlchemy's ``IntegrityError`` / ``DataError``, which the consumer
dead-letters, on SQLite (executemany) and PostgreSQL (COPY, binary) alike; no value is stored other than it was
given (psycopg's binary integer dumpers would wrap one out of range)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import DataError, IntegrityError

from services.common.adapters.sql import create_sql_engine
from services.common.bulk_insert import BulkInsert
from services.common.config import Settings
from services.common.consumer import _REMEMBER, applied_events, consumer_metadata
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
    "description": "tab\there, a newline\nand a backslash \\ and 'quotes', é, 🙂",
    "counterparty_name": "\\N",  # a text COPY's NULL marker, as text
    "reference": "",
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


def test_an_integer_beyond_its_column_is_refused_never_wrapped(settings: Settings) -> None:
    engine = create_sql_engine(settings.view_db_url)
    consumer_metadata.create_all(engine)
    bulk = _REMEMBER  # the projector's applied ids: (consumer, event id, topic, partition, offset)
    with engine.begin() as connection:
        for offset in (2**31, -(2**31) - 1):
            if engine.dialect.name == "postgresql":  # an INTEGER column is 32 bits there
                with pytest.raises(DataError), connection.begin_nested():
                    bulk(connection, [("c", f"e{offset}", "t", 0, offset)])
            else:  # and 64 on SQLite: stored as it is
                bulk(connection, [("c", f"e{offset}", "t", 0, offset)])
        bulk(connection, [("c", "e-last", "t", 0, 2**31 - 1), ("c", "e-first", "t", 0, -(2**31))])
    with engine.connect() as connection:
        stored = {row.event_id: row.offset for row in connection.execute(select(applied_events))}
    wide = {} if engine.dialect.name == "postgresql" else {f"e{2**31}": 2**31, f"e{-(2**31) - 1}": -(2**31) - 1}
    assert stored == {"e-last": 2**31 - 1, "e-first": -(2**31)} | wide
    engine.dispose()


@pytest.mark.parametrize(
    ("column", "value"),
    [("year", "2024"), ("year", True), ("amount_cents", 2**63), ("booked_on", "2024-03-01"), ("kind", 7),
     ("description", "a NUL \x00 inside")],
)
def test_a_value_of_another_type_is_a_dataerror_and_the_transaction_goes_on(
    settings: Settings, column: str, value: object
) -> None:
    engine = create_sql_engine(settings.view_db_url)
    view_metadata.create_all(engine)
    bulk = BulkInsert(journal)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":  # SQLite's columns take any value: nothing to refuse there
            with pytest.raises((DataError, IntegrityError)), connection.begin_nested():
                bulk(connection, [tuple((ROW | {column: value})[name] for name in bulk.columns)])
        bulk(connection, [tuple(ROW[name] for name in bulk.columns)])
    with engine.connect() as connection:
        assert list(connection.execute(select(journal.c.event_id)).scalars()) == ["e-1"]
    engine.dispose()


def test_the_projectors_tables_copy_in_binary_on_postgresql(settings: Settings) -> None:
    """The fast path is taken for the two tables the projector fills (a new column type would lose it)."""
    engine = create_sql_engine(settings.view_db_url)
    view_metadata.create_all(engine)
    consumer_metadata.create_all(engine)
    for bulk in (BulkInsert(journal), _REMEMBER):
        with engine.connect() as connection:
            _sql, _processors, binary = bulk._for(connection)
        assert (binary is not None) == (engine.dialect.name == "postgresql")
    engine.dispose()
