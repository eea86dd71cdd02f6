"""The event store's write transaction (guarded_recorders.py), on SQLite and on PostgreSQL.

On PostgreSQL the transaction goes as texts of several statements whose parameters psycopg binds on
this side (issue 17). Whatever a stored event or a side row holds is a value, never SQL: every byte of
a state, quotes, semicolons, comments, percent signs and placeholders in a topic or a side row come
back exactly as given, and the table they would try to drop is still there. A save that fails or is
refused stores nothing, neither its events nor its side rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from psycopg import ClientCursor
from psycopg._preparing import PrepareManager
from psycopg.errors import DivisionByZero

from services.common.config import Settings
from services.common.eventstore import build_application
from services.common.side_rows import SIDE_ROWS, SideRows
from services.common.stream_guard import GUARDS, GuardBroken
from tests.support.toy import ToyApplication

SIDE_TABLE = "test_side_notes"
HOSTILE = "it's'); DROP TABLE test_side_notes; -- %s %(x)s $1 \\x00 ; COMMIT; \u20ac"
"""Quotes, a statement's end, a comment, placeholders of every style and a non-ASCII character."""
EVERY_BYTE = bytes(range(256)) * 3


@contextmanager
def _sql(application: ToyApplication) -> Iterator[Any]:
    """A cursor on the event store's own database, committed on the way out."""
    datastore: Any = application.recorder.datastore
    if hasattr(datastore, "transaction"):  # SQLite
        with datastore.transaction(commit=True) as cursor:
            yield cursor
    else:
        with datastore.get_connection() as connection, connection.cursor() as cursor:
            yield cursor


def _side_notes(application: ToyApplication) -> list[tuple[str, str]]:
    with _sql(application) as cursor:
        cursor.execute(f"SELECT note_id, note FROM {SIDE_TABLE} ORDER BY note_id")  # noqa: S608 - a constant
        rows = cursor.fetchall()
    return [(row["note_id"], row["note"]) for row in rows]


@pytest.fixture
def application(settings: Settings) -> Iterator[ToyApplication]:
    app = build_application(ToyApplication, settings.eventsourcing_env("toy"))
    with _sql(app) as cursor:
        cursor.execute(f"CREATE TABLE {SIDE_TABLE} (note_id TEXT PRIMARY KEY, note TEXT NOT NULL)")
    yield app
    app.close()


def _event(stream: UUID, version: int, topic: str = "tests.support.toy:Counter.Added") -> StoredEvent:
    return StoredEvent(originator_id=stream, originator_version=version, topic=topic, state=EVERY_BYTE)


def _notes(*notes: tuple[str, str]) -> dict[str, Any]:
    return {SIDE_ROWS: SideRows(SIDE_TABLE, ("note_id", "note"), list(notes))}


def test_every_value_is_stored_as_given_and_the_ids_follow_the_given_order(application: ToyApplication) -> None:
    recorder = application.recorder
    first, second = uuid4(), uuid4()
    events = [_event(first, 1, topic=HOSTILE), _event(second, 1), _event(first, 2)]
    ids = recorder.insert_events(events, **_notes(("a", HOSTILE), ("b%s", "plain")))

    assert ids is not None and len(ids) == 3 and list(ids) == sorted(ids)
    by_id = {n.id: n for n in recorder.select_notifications(start=ids[0], limit=10)}
    assert [(by_id[i].originator_id, by_id[i].originator_version) for i in ids] == [(first, 1), (second, 1), (first, 2)]
    stored = recorder.select_events(first)
    assert [(e.originator_version, e.topic, e.state) for e in stored] == [
        (1, HOSTILE, EVERY_BYTE),
        (2, events[2].topic, EVERY_BYTE),
    ]
    assert _side_notes(application) == [("a", HOSTILE), ("b%s", "plain")]  # and the table is still there


def test_a_save_whose_insert_fails_stores_neither_its_events_nor_its_side_rows(application: ToyApplication) -> None:
    recorder = application.recorder
    taken = uuid4()
    recorder.insert_events([_event(taken, 1)])
    fresh = uuid4()
    with pytest.raises(IntegrityError):  # its second event takes a version already stored
        recorder.insert_events([_event(fresh, 1), _event(taken, 1)], **_notes(("lost", HOSTILE)))
    assert recorder.select_events(fresh) == []
    assert _side_notes(application) == []
    recorder.insert_events([_event(fresh, 1)], **_notes(("kept", "x")))  # the connection serves the next save
    assert len(recorder.select_events(fresh)) == 1 and _side_notes(application) == [("kept", "x")]


def test_a_save_whose_guard_breaks_stores_nothing(application: ToyApplication) -> None:
    recorder = application.recorder
    started = uuid4()
    recorder.insert_events([_event(started, 1)])
    fresh, aggregate = uuid4(), uuid4()
    guards = {aggregate: frozenset({started})}
    with pytest.raises(GuardBroken) as broken:
        recorder.insert_events([_event(fresh, 1)], **{GUARDS: guards}, **_notes(("refused", "x")))
    assert broken.value.refused == frozenset({aggregate})
    assert recorder.select_events(fresh) == [] and _side_notes(application) == []
    ids = recorder.insert_events([_event(fresh, 1)], **{GUARDS: {aggregate: frozenset({uuid4()})}})
    assert ids is not None and len(ids) == 1


@pytest.mark.parametrize("store_env", ["postgres"], indirect=True)  # the guard as a statement: PostgreSQL's alone
def test_the_guard_reads_the_index_however_long_the_history(application: ToyApplication) -> None:
    """The guard runs in every guarded save's transaction, under the table lock. Written as ``NOT EXISTS`` it
    was planned as a scan of the whole events table (3 ms at 10^4 events, growing with the history) while the
    table had no statistics yet (as here: no ANALYZE); as a count over the primary key it reads the index."""
    recorder: Any = application.recorder
    streams = [uuid4() for _ in range(500)]
    for start in range(0, len(streams), 100):
        chunk = streams[start : start + 100]
        recorder.insert_events([_event(stream, version) for stream in chunk for version in (1, 2, 3)])
    with recorder.datastore.get_connection() as connection, ClientCursor(connection) as cursor:
        guard_check = recorder._texts(cursor).guard_check
        cursor.execute("EXPLAIN " + guard_check, ([uuid4(), streams[0]],))
        plan = "\n".join(row["QUERY PLAN"] for row in cursor.fetchall())
        assert "Seq Scan" not in plan and "Index" in plan, plan
        with pytest.raises(DivisionByZero):  # and it still refuses: a guarded stream holds events
            cursor.execute(guard_check, ([uuid4(), streams[0]],))
        connection.rollback()
        cursor.execute(guard_check, ([uuid4()],))
        assert cursor.fetchone() is not None


@pytest.mark.parametrize("store_env", ["postgres"], indirect=True)
def test_the_one_text_transaction_is_no_candidate_for_a_prepared_statement(
    application: ToyApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text of many statements with its values bound in is never prepared (psycopg prepares one statement
    only), so psycopg need not count it: each save's text would be a new key of ~3 KB (issue 17). The
    connection's own setting comes back for its other statements, also after a save that fails."""
    recorder: Any = application.recorder
    counted: list[bytes] = []
    count = PrepareManager.maybe_add_to_cache

    def counting(self: PrepareManager, query: Any, prep: Any, name: bytes) -> Any:
        if self.prepare_threshold is not None:
            counted.append(query.query)
        return count(self, query, prep, name)

    monkeypatch.setattr(PrepareManager, "maybe_add_to_cache", counting)
    with recorder.datastore.get_connection() as connection:
        threshold = connection.prepare_threshold
    stream = uuid4()
    recorder.insert_events([_event(stream, 1)], **_notes(("n1", "x")))
    with pytest.raises(IntegrityError):
        recorder.insert_events([_event(stream, 1)])
    recorder.insert_events([_event(stream, 2)], **{GUARDS: {uuid4(): frozenset({uuid4()})}})
    assert not [query for query in counted if b"INSERT INTO" in query]
    assert len(recorder.select_events(stream)) == 2  # a read: counted, as eventsourcing's statements are
    assert counted
    with recorder.datastore.get_connection() as connection:
        assert connection.prepare_threshold == threshold is not None


def test_a_save_with_tracking_takes_the_recorders_own_path_with_the_same_guard_and_side_rows(
    application: ToyApplication,
) -> None:
    """A save with another keyword (a process's tracking) goes through eventsourcing's own transaction on
    PostgreSQL (guarded_recorders.py); its guard and side rows are the one-text path's statements."""
    recorder: Any = application.recorder
    started = uuid4()
    recorder.insert_events([_event(started, 1)])
    fresh, aggregate = uuid4(), uuid4()
    with pytest.raises(GuardBroken):
        recorder.insert_events(
            [_event(fresh, 1)], tracking=Tracking("upstream", 1), **{GUARDS: {aggregate: frozenset({started})}},
            **_notes(("refused", "x")),
        )
    assert recorder.select_events(fresh) == [] and _side_notes(application) == []
    recorder.insert_events([_event(fresh, 1)], tracking=Tracking("upstream", 1), **_notes(("kept", HOSTILE)))
    assert len(recorder.select_events(fresh)) == 1 and _side_notes(application) == [("kept", HOSTILE)]
