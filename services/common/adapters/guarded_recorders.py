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

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

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

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if kwargs.get(GUARDS) and self.datastore.enable_db_functions:
            # The database function inserts without the statements below: the guard would go unchecked.
            raise RuntimeError("guarded saves need POSTGRES_ENABLE_DB_FUNCTIONS off (services/common/config.py)")
        with self.writer_turn:
            others = [key for key, value in kwargs.items() if key not in (GUARDS, SIDE_ROWS) and value is not None]
            if not stored_events or self.datastore.enable_db_functions or others:  # e.g. a process's tracking
                return super().insert_events(stored_events, **kwargs)
            return self._insert_in_two_round_trips(stored_events, **kwargs)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_in_two_round_trips(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """The recorder's transaction (the table lock, the guard, the events, the NOTIFY, the side rows), sent
        in at most two round trips: the lock and the guard's read, then the rest with its COMMIT (one round
        trip in all for a save without guards).

        eventsourcing's own ``insert_events`` made six (BEGIN, the guard, the insert, a sync before COMMIT, the
        COMMIT, the pipeline's end), four of them while the table lock was held. Under row 1's load each round
        trip also waits for the worker's other threads to hand back the interpreter, so the lock was held
        ~3-4 ms per batch where one commit takes ~1.5 (issue 17). The statements, their order and the lock are
        the recorder's own; if the insert fails, the server skips what follows it (the COMMIT too) and the
        transaction is rolled back, so nothing of a failed or refused save is stored."""
        guards = kwargs.get(GUARDS)
        streams = guarded_streams(guards)
        side: SideRows | None = kwargs.get(SIDE_ROWS)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            try:
                # The pipeline's end sends its one sync: the whole transaction's second (or only) round trip.
                with conn.pipeline() as pipeline:
                    curs.execute(SQL("BEGIN"))
                    self._lock_table(curs)
                    if streams:
                        self._read_guarded_streams(curs, streams)
                        pipeline.sync()
                        check_guards(guards, (UUID(str(row["originator_id"])) for row in curs.fetchall()))
                    self._notify_channel(curs)
                    # The plain insert: this class's own and the application recorder's would lock and check again.
                    PostgresAggregateRecorder._insert_stored_events(self, curs, stored_events)
                    with conn.cursor() as side_curs:
                        self._write_side_rows(side_curs, side)
                        side_curs.execute(SQL("COMMIT"))
                return self._fetch_ids_after_insert_events(curs, stored_events)
            finally:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.rollback()  # a refused guard, a failed insert: the pool gets the connection back clean

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
        curs.execute(
            SQL("SELECT DISTINCT originator_id FROM {0}.{1} WHERE originator_id = ANY(%s)").format(
                Identifier(self.datastore.schema), Identifier(self.events_table_name)
            ),
            (list(streams),),
        )

    def _write_side_rows(self, curs: Cursor[DictRow], side: SideRows | None) -> None:
        if side is not None and side.rows:
            curs.executemany(
                SQL("INSERT INTO {0}.{1} ({2}) VALUES ({3}) ON CONFLICT DO NOTHING").format(
                    Identifier(self.datastore.schema), Identifier(side.table),
                    SQL(", ").join(map(Identifier, side.columns)), SQL(", ").join([SQL("%s")] * len(side.columns)),
                ),
                side.rows,
            )
