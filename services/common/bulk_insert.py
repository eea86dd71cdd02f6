"""Many rows into one table in one statement's worth of work, on SQLite and PostgreSQL alike.

SQLAlchemy's executemany turns every row's dict into bound parameters in Python, and psycopg then
sends one prepared INSERT per row in a pipeline: for the projector's ~2 rows per event that was
a third of its time (bench/README.md, row 3). Here a row is a tuple in the table's column order;
SQLite gets one C-level ``executemany``, PostgreSQL one ``COPY ... FROM STDIN`` (psycopg formats the
rows in C; an ``INSERT ... SELECT FROM unnest(arrays)`` spent more in psycopg's Python array dumper
than the executemany it replaced). Either way a refusal by the database surfaces as SQLAlchemy's
``IntegrityError`` or ``DataError``, as the consumer's dead-letter path expects.

On PostgreSQL the COPY is binary when every column's type has a binary form here (``_BINARY``): no text to
escape in the projector, none to parse in the server (issue 17, thirteenth round, bench/README.md: ~3-12 %
less CPU an event in each). psycopg's binary ``int4``/``int2`` dumpers wrap a value out of range without a
word (2**31 is stored as -2**31, measured), so such columns' values are checked here first; a value of
another Python type than its column's, or out of range, is refused as ``DataError``, as the server refuses
it in a text COPY. A table with another column type keeps the text COPY.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Connection, Date, Integer, SmallInteger, String, Table, Text
from sqlalchemy.exc import DataError, DBAPIError

_Processor = Callable[[Any], Any]

_BINARY: dict[type[Any], tuple[str, int | None]] = {
    String: ("text", None),
    Text: ("text", None),
    BigInteger: ("int8", None),  # psycopg refuses a value past int8 itself (OverflowError)
    Integer: ("int4", 2**31),
    SmallInteger: ("int2", 2**15),
    Date: ("date", None),
}
"""A column type (its exact class) -> the PostgreSQL type its values are dumped as, and the bound of an integer
column whose values psycopg would wrap (-bound <= value < bound)."""


@dataclass(frozen=True)
class _Binary:
    """A binary COPY's types, and the columns whose values are checked before psycopg dumps them."""

    types: list[str]
    bounded: list[tuple[int, int]]
    """(column index, bound) of each integer column psycopg would wrap."""

    def refusal(self, rows: Sequence[tuple[Any, ...]]) -> str | None:
        """Why the server would refuse one of ``rows`` that psycopg would store wrongly (None: none)."""
        for index, bound in self.bounded:
            for row in rows:
                value = row[index]
                if value is not None and (type(value) is not int or not -bound <= value < bound):
                    return f"column {index + 1}: {value!r} is not an integer of {self.types[index]}"
        return None


_Compiled = tuple[str, list[tuple[int, _Processor]], _Binary | None]
"""A dialect's statement, the columns' conversions, and the binary COPY's types (None: a text COPY, or SQLite)."""


class BulkInsert:
    """An INSERT of ``columns`` of ``table`` (all of them by default), compiled once per dialect."""

    def __init__(self, table: Table, columns: Sequence[str] | None = None):
        self.table = table
        self.columns = list(columns) if columns is not None else [column.name for column in table.columns]
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, connection: Connection) -> _Compiled:
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
            binary = None
            if dialect.name == "postgresql":
                binary = _binary_copy(types)
                sql = f"COPY {target} FROM STDIN" + (" (FORMAT BINARY)" if binary is not None else "")
            elif dialect.name == "sqlite":
                sql = f"INSERT INTO {target} VALUES ({', '.join('?' for _ in self.columns)})"
            else:
                raise NotImplementedError(f"bulk inserts into {dialect.name}")  # the services run on these two
            compiled = self._compiled[dialect.name] = (sql, processors, binary)
        return compiled

    def __call__(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        sql, processors, binary = self._for(connection)
        if processors:
            converted = []
            for row in rows:
                values = list(row)
                for index, processor in processors:
                    values[index] = processor(values[index])
                converted.append(tuple(values))
            rows = converted
        if connection.dialect.name == "postgresql":
            _copy(connection, sql, rows, binary)
        else:
            connection.exec_driver_sql(sql, list(rows))


def _binary_copy(types: list[Any]) -> _Binary | None:
    found = [_BINARY.get(type(column_type)) for column_type in types]
    if any(known is None for known in found):
        return None
    known = [pair for pair in found if pair is not None]
    bounded = [(index, bound) for index, (_name, bound) in enumerate(known) if bound is not None]
    return _Binary([name for name, _bound in known], bounded)


def _copy(connection: Connection, sql: str, rows: Sequence[tuple[Any, ...]], binary: _Binary | None) -> None:
    """COPY in the connection's transaction (``binary``: the types of a binary one); a refusal is raised as
    SQLAlchemy would raise it."""
    dialect = connection.dialect
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    if binary is not None and (reason := binary.refusal(rows)) is not None:
        raise DataError(sql, None, dialect.loaded_dbapi.DataError(reason))
    try:
        with driver_connection.cursor() as cursor, cursor.copy(sql) as copy:
            if binary is not None:
                copy.set_types(binary.types)
            for row in rows:
                copy.write_row(row)
    except (TypeError, ValueError, OverflowError) as error:  # psycopg's binary dumpers: a value of another type
        if binary is None:
            raise
        # The COPY was ended with an error, so the transaction is as after a refusal by the server.
        raise DataError(sql, None, dialect.loaded_dbapi.DataError(str(error))) from error
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, driver_connection, None)
        if lost:
            connection.invalidate(error)
        raise DBAPIError.instance(
            sql, None, error, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
        ) from error
