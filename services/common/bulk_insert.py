"""Many rows into one table in one statement's worth of work, on SQLite and PostgreSQL alike.

SQLAlchemy's executemany turns every row's dict into bound parameters in Python, and psycopg then
sends one prepared INSERT per row in a pipeline: for the projector's ~2 rows per event that was
a third of its time (bench/README.md, row 3). Here a row is a tuple in the table's column order;
SQLite gets one C-level ``executemany``, PostgreSQL one ``COPY ... FROM STDIN`` (psycopg formats the
rows in C; an ``INSERT ... SELECT FROM unnest(arrays)`` spent more in psycopg's Python array dumper
than the executemany it replaced). Either way a refusal by the database surfaces as SQLAlchemy's
``IntegrityError`` or ``DataError``, as the consumer's dead-letter path expects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError

_Processor = Callable[[Any], Any]


class BulkInsert:
    """An INSERT of ``columns`` of ``table`` (all of them by default), compiled once per dialect."""

    def __init__(self, table: Table, columns: Sequence[str] | None = None):
        self.table = table
        self.columns = list(columns) if columns is not None else [column.name for column in table.columns]
        self._compiled: dict[str, tuple[str, list[tuple[int, _Processor]]]] = {}

    def _for(self, connection: Connection) -> tuple[str, list[tuple[int, _Processor]]]:
        dialect = connection.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            types = [self.table.c[name].type for name in self.columns]
            # The column types' own conversions (a date is text on SQLite), as SQLAlchemy would apply them.
            processors: list[tuple[int, _Processor]] = [
                (index, processor)
                for index, column_type in enumerate(types)
                if (processor := column_type.bind_processor(dialect)) is not None
            ]
            quote = dialect.identifier_preparer.quote
            names = ", ".join(quote(name) for name in self.columns)
            target = f"{quote(self.table.name)} ({names})"
            if dialect.name == "postgresql":
                sql = f"COPY {target} FROM STDIN"
            elif dialect.name == "sqlite":
                sql = f"INSERT INTO {target} VALUES ({', '.join('?' for _ in self.columns)})"
            else:
                raise NotImplementedError(f"bulk inserts into {dialect.name}")  # the services run on these two
            compiled = self._compiled[dialect.name] = (sql, processors)
        return compiled

    def __call__(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        sql, processors = self._for(connection)
        if processors:
            converted = []
            for row in rows:
                values = list(row)
                for index, processor in processors:
                    values[index] = processor(values[index])
                converted.append(tuple(values))
            rows = converted
        if connection.dialect.name == "postgresql":
            _copy(connection, sql, rows)
        else:
            connection.exec_driver_sql(sql, list(rows))


def _copy(connection: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """COPY in the connection's transaction; a refusal is raised as SQLAlchemy would raise it."""
    dialect = connection.dialect
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    try:
        with driver_connection.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, driver_connection, None)
        if lost:
            connection.invalidate(error)
        raise DBAPIError.instance(
            sql, None, error, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
        ) from error
