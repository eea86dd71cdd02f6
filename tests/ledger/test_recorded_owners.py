"""Read-your-writes: the owners of the events a server process recorded itself are answered from its memory.

A read with ``includes_event_id`` after a posting asks whose event it is (``RecordedEvents.owner_of``). The
process that recorded it remembers the answer once the save committed, so the read after a posting needs
no query (issue 17, row 5). What must hold: only a committed save is remembered (a refused posting's event
stays unknown, so no read waits for it), the memory agrees with the table, and it is bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, event

from services.common.stream_guard import GUARDS, GuardBroken
from services.ledger.application.app import LedgerApplication
from services.ledger.read_side import RecordedEvents
from tests.ledger.conftest import AMSTERDAM, UTRECHT, expenditure
from tests.ledger.test_close_race import new_posting
from tests.support.tokens import TokenFactory


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run on ``engine`` inside the block."""
    seen: list[str] = []

    def note(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_the_owner_of_a_posting_is_answered_from_memory_as_the_table_answers(
    client: FlaskClient, tokens: TokenFactory
) -> None:
    headers = tokens.headers("municipality", AMSTERDAM)
    answer = client.post(f"/v1/municipalities/{AMSTERDAM}/expenditures", json=expenditure(), headers=headers)
    assert answer.status_code == 201, answer.json
    event_id = answer.json["event_id"]
    recorded: RecordedEvents = client.application.extensions["ledger"].application.recorded_events
    with statements(recorded.engine) as seen:
        assert recorded.owner_of(event_id) == (True, AMSTERDAM)
    assert seen == []
    another_process = RecordedEvents(recorded.engine)  # remembers nothing: asks the table
    with statements(recorded.engine) as seen:
        assert another_process.owner_of(event_id) == (True, AMSTERDAM)
        assert another_process.owner_of("00000000-0000-4000-8000-000000000000") == (False, None)
    assert len(seen) == 2


def test_a_refused_posting_is_not_remembered(client: FlaskClient) -> None:
    """A posting refused in the save's transaction (its year closed meanwhile) stored nothing: its event is
    unknown to memory and table alike, so no read waits for it."""
    application: LedgerApplication = client.application.extensions["ledger"].application
    application.close_year(UTRECHT, 2024, closed_by="ministry", final_account=True)
    late = new_posting(application, UTRECHT)
    late_event_id = str(late.pending_events[0].event_id)
    with pytest.raises(GuardBroken):
        application.save(late, **{GUARDS: application._while_open(late)})
    with statements(application.recorded_events.engine) as seen:
        assert application.recorded_events.owner_of(late_event_id) == (False, None)
    assert len(seen) == 1  # asked of the table: not in memory


def test_the_memory_keeps_the_most_recent_owners_only(client: FlaskClient) -> None:
    application: LedgerApplication = client.application.extensions["ledger"].application
    recorded = RecordedEvents(application.recorded_events.engine, remembered=3)
    saved = []
    for _ in range(5):
        posting = new_posting(application, AMSTERDAM)
        saved.append(str(posting.pending_events[0].event_id))
        application.save(posting)
        recorded.remember(RecordedEvents.rows([(saved[-1], AMSTERDAM)]))
    with statements(recorded.engine) as seen:
        for event_id in saved:
            assert recorded.owner_of(event_id) == (True, AMSTERDAM)  # from memory or from the table, the same
    assert len(seen) == 2  # the two oldest were forgotten: asked of the table
