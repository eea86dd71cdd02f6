"""BalancesProjection: the three topics -> the ledger's read model, applied by the ProjectionRunner.

What an event moves is decided by ``application/movements.py`` (``effects_of``), the one function
the audit replay uses too; this adapter only answers its questions from SQL and writes its rows:
every money movement becomes signed journal rows (see application/view.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from services.common.consumer import Rejected
from services.ledger.application.movements import LOOKUPS, Effects, Original, Refused, effects_of
from services.ledger.application.view import (
    PROJECTION_NAME,
    closings,
    journal,
    libraries,
    municipalities,
    view_metadata,
)


class SqlBook:
    """The ``Book`` of ``effects_of``, answered by the view's tables within the consumer's transaction."""

    def __init__(self, connection: Connection):
        self.connection = connection

    def total(self, kind: str, **where: Any) -> int:
        assert tuple(sorted(where)) in LOOKUPS[kind], f"{kind} by {sorted(where)} is not in LOOKUPS"
        query = select(func.coalesce(func.sum(journal.c.amount_cents), 0)).where(journal.c.kind == kind)
        for column, value in where.items():
            query = query.where(journal.c[column] == value)
        return int(self.connection.execute(query).scalar_one())

    def original(self, event_id: str) -> Original | None:
        row = self.connection.execute(
            select(journal).where(journal.c.event_id == event_id, journal.c.line == 1)
        ).first()
        if row is None:
            return None
        return Original(
            int(row.amount_cents), row.municipality_code, row.counterparty_id, row.counterparty_name, row.reference
        )

    def is_closed(self, municipality_code: str, year: int) -> bool:
        return (
            self.connection.execute(
                select(closings.c.event_id).where(
                    closings.c.municipality_code == municipality_code, closings.c.year == year
                )
            ).first()
            is not None
        )


_INSERT_JOURNAL = insert(journal)
_EMPTY_JOURNAL_ROW: dict[str, Any] = {column.name: None for column in journal.columns}


class BalancesProjection:
    name = PROJECTION_NAME

    def create_tables(self, engine: Engine) -> None:
        view_metadata.create_all(engine)

    def apply(self, connection: Connection, topic: str, envelope: dict[str, Any]) -> None:
        try:
            effects = effects_of(topic, envelope, SqlBook(connection))
        except Refused as refused:
            raise Rejected(str(refused)) from None
        self.write(connection, envelope, effects)

    def write(self, connection: Connection, envelope: dict[str, Any], effects: Effects) -> None:
        if effects.rows:
            # One prepared statement for all rows of the event: every row names every column.
            common = {
                **_EMPTY_JOURNAL_ROW,
                "event_id": envelope["event_id"],
                "event_type": envelope["event_type"],
                "recorded_at": envelope["recorded_at"],
                "stream_id": envelope["stream_id"],
            }
            connection.execute(_INSERT_JOURNAL, [{**common, "line": line, **row} for line, row in effects.rows])
        if effects.municipality_name is not None:
            self._upsert_name(connection, municipalities, "municipality_code", *effects.municipality_name)
        if effects.library_name is not None:
            self._upsert_name(connection, libraries, "library_id", *effects.library_name)
        if effects.closing is not None:
            connection.execute(
                insert(closings).values(
                    event_id=envelope["event_id"], recorded_at=envelope["recorded_at"], **effects.closing
                )
            )

    def _upsert_name(self, connection: Connection, table: Any, key: str, key_value: str, name: str) -> None:
        column = table.c[key]
        if connection.execute(select(column).where(column == key_value)).first() is None:
            connection.execute(insert(table).values({key: key_value, "name": name}))
        else:
            connection.execute(update(table).where(column == key_value).values(name=name))
