"""eventsourcing's application recorders with guarded saves (``services/common/stream_guard.py``).

Both stores already admit one writer at a time: SQLite by its write lock, PostgreSQL by
``LOCK TABLE ... IN EXCLUSIVE MODE``, which eventsourcing's recorder takes in every transaction that
inserts events (POSTGRES_ENABLE_DB_FUNCTIONS stays off: config.py). The guard is checked while that
lock is held, before the commit, so no other writer can start a guarded stream between the check
and the insert; the lock's order is the order the events are recorded (and published) in. So no
advisory lock is needed: the lock that orders the store is the one that orders the decision.

They also write a save's ``side_rows`` (``services/common/side_rows.py``) in the same transaction,
after the events and the guard check, so a refused or failed save leaves none of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, ProgrammingError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from eventsourcing.utils import retry
from psycopg import ClientCursor, Connection, Cursor
from psycopg.abc import Query
from psycopg.errors import DivisionByZero
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Identifier

from services.common.adapters.writers_in_turn import WritersInTurn
from services.common.side_rows import SIDE_ROWS, SideRows
from services.common.stream_guard import GUARDS, GuardingRecorder, check_guards, guarded_streams


class GuardedSQLiteApplicationRecorder(GuardingRecorder, SQLiteApplicationRecorder):
    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any):
        super().__init__(datastore, **kwargs)
        self.writer_turn = WritersInTurn(datastore.pool.db_name)
        """Taken by every insert; the group commit takes it first, before it picks its batch."""

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        with self.writer_turn:
            return super().insert_events(stored_events, **kwargs)

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        streams = guarded_streams(kwargs.get(GUARDS))
        if streams:
            # Checked after the inserts: the first insert took SQLite's write lock (the recorder's
            # "BEGIN" is deferred, so a read before it could see a state another writer has changed),
            # and raising here rolls the whole transaction back.
            marks = ",".join("?" * len(streams))
            c.execute(
                f"SELECT DISTINCT originator_id FROM {self.events_table_name} WHERE originator_id IN ({marks})",  # noqa: S608 - the recorder's own table name
                [stream.hex for stream in streams],
            )
            check_guards(kwargs.get(GUARDS), (UUID(str(row["originator_id"])) for row in c.fetchall()))
        side: SideRows | None = kwargs.get(SIDE_ROWS)
        if side is not None and side.rows:
            c.executemany(
                f"INSERT INTO {side.table} ({', '.join(side.columns)}) "  # noqa: S608 - plain names (SideRows)
                f"VALUES ({', '.join('?' * len(side.columns))}) ON CONFLICT DO NOTHING",
                side.rows,
            )
        return ids


class GuardedPostgresApplicationRecorder(GuardingRecorder, PostgresApplicationRecorder):
    writer_turn: AbstractContextManager[Any] = nullcontext()
    """The writers of this host take turns on a file before the table lock (``build_application`` sets
    it): only so that a group commit picks its batch in its turn. The table lock still orders the store;
    writers on other hosts do without the turn."""
    _transaction_texts: _TransactionTexts | None = None

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if kwargs.get(GUARDS) and self.datastore.enable_db_functions:
            # The database function inserts without the statements below: the guard would go unchecked.
            raise RuntimeError("guarded saves need POSTGRES_ENABLE_DB_FUNCTIONS off (services/common/config.py)")
        with self.writer_turn:
            others = [key for key, value in kwargs.items() if key not in (GUARDS, SIDE_ROWS) and value is not None]
            plain = not others and self.datastore.originator_id_type == "uuid"  # others: e.g. a process's tracking
            if not stored_events or self.datastore.enable_db_functions or not plain:
                return super().insert_events(stored_events, **kwargs)
            return self._insert_in_one_text(stored_events, **kwargs)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_in_one_text(
        self, stored_events: Sequence[StoredEvent], *, guard_read_first: bool = False, **kwargs: Any
    ) -> Sequence[int] | None:
        """The recorder's transaction (its table lock, the guard, the events, the NOTIFY, the side rows) as
        one text of several statements, in one round trip: the table lock is taken and released on the
        server, with no wait for this process in between.

        eventsourcing's own ``insert_events`` made six round trips, four of them while the table lock was
        held; a pipeline of its statements (the fourth round) still sent each statement with its own write
        and waits, ~10 writes and ~20 polls a transaction (strace). Each of them hands the interpreter to
        the worker's other threads, and under row 1's load the committing thread waited to get it back
        while it held the lock that every writer of the store waits for (issue 17). Here the parameters are
        bound by psycopg on this side (``ClientCursor``: its quoting and casts, never text pasted in).

        The guard is a statement that divides by zero when a guarded stream holds an event. If any
        statement fails, the server skips the rest of the text, the COMMIT too, and the transaction is
        rolled back: nothing of a failed or refused save is stored. A refused guard is then asked again
        with ``guard_read_first``: the guard's read in a first text, under the lock, and ``GuardBroken``
        naming the aggregates refused (or, should the read find the streams empty, the save stored)."""
        guards = kwargs.get(GUARDS)
        streams = guarded_streams(guards)
        side: SideRows | None = kwargs.get(SIDE_ROWS)
        refused = False
        with self.datastore.get_connection() as conn, ClientCursor(conn) as curs, _not_prepared(conn):
            texts = self._texts(curs)
            try:
                closing, params = texts.closing(curs, stored_events, side)
                if streams and guard_read_first:
                    curs.execute(texts.opening_with_guard_read, (list(streams),))
                    rows = _result(curs, texts.opening_statements).fetchall()
                    check_guards(guards, (UUID(str(row["originator_id"])) for row in rows))
                    curs.execute(closing, params)
                    ids = _notification_ids(_result(curs, texts.insert_index))
                elif streams:
                    try:
                        curs.execute(texts.opening_with_guard_check + closing, [list(streams), *params])
                        ids = _notification_ids(_result(curs, texts.opening_statements + 1 + texts.insert_index))
                    except DivisionByZero:
                        refused = True
                else:
                    curs.execute(texts.opening + closing, params)
                    ids = _notification_ids(_result(curs, texts.opening_statements + texts.insert_index))
            finally:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.rollback()  # a refused guard, a failed insert: the pool gets the connection back clean
        if refused:
            return self._insert_in_one_text(stored_events, guard_read_first=True, **kwargs)
        if len(ids) != len(stored_events):
            raise ProgrammingError(f"got {len(ids)} notification ids for {len(stored_events)} events")
        return ids

    def _texts(self, curs: Cursor[DictRow]) -> _TransactionTexts:
        texts = self._transaction_texts
        if texts is None:
            texts = self._transaction_texts = _TransactionTexts(self, curs)
        return texts

    def _insert_stored_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        streams = guarded_streams(kwargs.get(GUARDS))
        if streams:
            # The table lock first (the recorder takes it again below, a no-op within the transaction):
            # a writer that started a guarded stream before it has committed, one after it waits for us.
            # Raised before anything is inserted: the recorder commits its transaction on the way out.
            self._lock_table(curs)
            self._read_guarded_streams(curs, streams)
            check_guards(kwargs.get(GUARDS), (UUID(str(row["originator_id"])) for row in curs.fetchall()))
        super()._insert_stored_events(curs, stored_events, **kwargs)

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # After the events' insert (and its guard, which raises before it): a refused save's transaction
        # is committed empty by the recorder, so rows written earlier would outlive it. Another cursor,
        # as the ids are read from this one.
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        with curs.connection.cursor() as side_curs:
            self._write_side_rows(side_curs, kwargs.get(SIDE_ROWS))
        return ids

    def _read_guarded_streams(self, curs: Cursor[DictRow], streams: frozenset[UUID]) -> None:
        """Which of ``streams`` hold events (the rows follow on ``curs``); asked after the table lock."""
        curs.execute(self._texts(curs).guard_read, (list(streams),))

    def _write_side_rows(self, curs: Cursor[DictRow], side: SideRows | None) -> None:
        if side is not None and side.rows:
            curs.executemany(self._texts(curs).side_insert(curs, side, 1), side.rows)


class _TransactionTexts:
    """The constant parts of ``_insert_in_one_text``'s texts, composed once with the recorder's own
    statements and names (identifiers quoted by psycopg; a ``%`` in them doubled, as only the
    placeholders added here may bind a parameter). The guard's read and the side rows' insert serve
    eventsourcing's own transaction too (a save with tracking), one row at a time there."""

    def __init__(self, recorder: GuardedPostgresApplicationRecorder, curs: Cursor[DictRow]):
        def text(query: Query) -> str:
            plain = query.as_string(curs) if isinstance(query, Composable) else query
            return (plain.decode() if isinstance(plain, bytes) else str(plain)).replace("%", "%%")

        schema, table = Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
        opening = ["BEGIN", *(text(statement) for statement in recorder.lock_table_statements)]
        self.opening = "; ".join(opening) + "; "
        self.opening_statements = len(opening)
        self.guard_read = text(
            SQL("SELECT DISTINCT originator_id FROM {0}.{1} WHERE originator_id = ").format(schema, table)
        ) + "ANY(%s)"
        """Which of the guarded streams hold events."""
        self.opening_with_guard_read = self.opening + self.guard_read
        self.guard_check = text(
            SQL("SELECT 1 / (count(*) = 0)::int FROM {0}.{1} WHERE originator_id = ").format(schema, table)
        ) + "ANY(%s)"
        """Divides by zero, and so fails the text, when a guarded stream holds an event. A count, not ``NOT
        EXISTS``: for an EXISTS the planner expected an early match and scanned the whole table (3 ms at 10^4
        events and growing; EXPLAIN ANALYZE), where the count reads the primary key's index (0.1 ms)."""
        self.opening_with_guard_check = self.opening + self.guard_check + "; "
        self.insert_index = 1
        """The events' insert follows the NOTIFY in the closing text (and the opening's statements, and the
        guard's read or check, in the text)."""
        self._notify = text(SQL("NOTIFY {0}").format(Identifier(recorder.channel_name)))
        self._insert = text(
            SQL("INSERT INTO {0}.{1} (originator_id, originator_version, topic, state) VALUES ").format(schema, table)
        )
        self._side_inserts: dict[tuple[str, tuple[str, ...]], str] = {}
        self._schema = schema

    def closing(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], side: SideRows | None
    ) -> tuple[str, list[Any]]:
        """The text after the lock and the guard: NOTIFY, the events' insert (returning their notification
        ids, in the order given), the side rows' insert, COMMIT; and its parameters."""
        params: list[Any] = []
        for event in stored_events:
            params += (event.originator_id, event.originator_version, event.topic, event.state)
        statements = [
            self._notify,
            self._insert + ", ".join(["(%s, %s, %s, %s)"] * len(stored_events)) + " RETURNING notification_id",
        ]
        if side is not None and side.rows:
            statements.append(self.side_insert(curs, side, len(side.rows)))
            for row in side.rows:
                params += row
        statements.append("COMMIT")
        return "; ".join(statements), params

    def side_insert(self, curs: Cursor[DictRow], side: SideRows, count: int) -> str:
        """The insert of ``count`` rows of ``side``; a row already there is left as it is."""
        key = (side.table, side.columns)
        head = self._side_inserts.get(key)
        if head is None:
            head = self._side_inserts[key] = (
                "INSERT INTO "
                + SQL("{0}.{1} ({2})").format(
                    self._schema, Identifier(side.table), SQL(", ").join(map(Identifier, side.columns))
                ).as_string(curs).replace("%", "%%")
                + " VALUES "
            )
        row = "(" + ", ".join(["%s"] * len(side.columns)) + ")"
        return head + ", ".join([row] * count) + " ON CONFLICT DO NOTHING"


def _notification_ids(inserted: ClientCursor[DictRow]) -> list[int]:
    return [row["notification_id"] for row in inserted.fetchall()]


def _result(curs: ClientCursor[DictRow], index: int) -> ClientCursor[DictRow]:
    """``curs`` at the result of the ``index``-th statement of the text it executed (the first is 0)."""
    for _ in range(index):
        if not curs.nextset():
            raise ProgrammingError(f"the result of statement {index} of the transaction's text is missing")
    return curs


@contextmanager
def _not_prepared(conn: Connection[Any]) -> Iterator[None]:
    """psycopg's prepared statements off on ``conn`` for a one-text transaction: a text of many statements with its
    parameters bound in it is never prepared, yet psycopg counted each one as a candidate (hashing its ~3 KB as a
    key, then dropping it: ~1 % of a posting's time in a py-spy of bench row 1, issue 17). The connection's other
    statements (eventsourcing's reads) are prepared as before."""
    threshold = conn.prepare_threshold
    conn.prepare_threshold = None
    try:
        yield
    finally:
        conn.prepare_threshold = threshold
