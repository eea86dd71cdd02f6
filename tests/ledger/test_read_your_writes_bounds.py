"""Attacks on read-your-writes (`?includes_event_id=`, issue 16): a waiting read holds a server thread,
so the ledger waits only for an event it recorded and the caller may read, at most
IDO_READ_YOUR_WRITES_MAX_WAITERS at once per process; every other id is answered at once, the same
way whether no one recorded it or it is another municipality's."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import insert

from services.common.config import load_settings
from services.common.consumer import applied_events
from services.ledger.entrypoints.definition import create_app
from services.ledger.read_side.sql.view import PROJECTION_NAME, journal
from tests.support.tokens import TokenFactory

BALANCES = "/v1/municipalities/{code}/balances/2024?includes_event_id={event_id}"
AMSTERDAM, UTRECHT = "GM0363", "GM0344"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[tuple[Flask, TokenFactory]]:
    settings = load_settings({
        "IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys"),
        "IDO_YEARS_OPEN_BEFORE_AWARD": "2024",
        # long enough that a read which waits cannot pass for one answered at once
        "IDO_READ_YOUR_WRITES_TIMEOUT_MS": "60000",
        "IDO_READ_YOUR_WRITES_MAX_WAITERS": "1",
    })
    tokens = TokenFactory(settings)  # makes the token keys the app reads
    app = create_app(settings)
    yield app, tokens
    app.extensions["ledger"].application.close()


class Waits:
    """Records each wait of the poller and answers it at once (not projected)."""

    def __init__(self) -> None:
        self.event_ids: list[str] = []

    def __call__(self, event_id: str, timeout_ms: int) -> bool:
        self.event_ids.append(event_id)
        return False


@pytest.fixture
def waits(ledger: tuple[Flask, TokenFactory], monkeypatch: pytest.MonkeyPatch) -> Waits:
    spy = Waits()
    monkeypatch.setattr(ledger[0].extensions["ledger"].queries.projected, "wait", spy)
    return spy


def post_expenditure(app: Flask, tokens: TokenFactory, code: str) -> str:
    answer = app.test_client().post(
        f"/v1/municipalities/{code}/expenditures", headers=tokens.headers("municipality", code),
        json={"grant_year": 2024, "category": "promotion", "amount_cents": 100, "booked_on": "2024-03-01",
              "counterparty": {"id": "PRINT-1", "name": "Drukkerij"}, "description": "flyers", "reference": "R-1"},
    )
    assert answer.status_code == 201, answer.json
    event_id: str = answer.json["event_id"]
    return event_id


def mark_applied(connection: Any, event_id: str, topic: str, offset: int) -> None:
    """The projector's mark that ``event_id`` was applied: what a waiting read waits for."""
    connection.execute(insert(applied_events), [
        {"consumer": PROJECTION_NAME, "event_id": event_id, "topic": topic, "partition": 0, "offset": offset}
    ])


def project_expenditure(app: Flask, event_id: str, offset: int) -> None:
    """The ledger's own event as the projector marks it applied."""
    with app.extensions["ledger"].queries.engine.begin() as connection:
        mark_applied(connection, event_id, "ido.expenditures.v1", offset)


def project_award(app: Flask, code: str) -> str:
    """A payments event (an award of ``code``) as the projector leaves it in the view."""
    event_id = str(uuid.uuid4())
    with app.extensions["ledger"].queries.engine.begin() as connection:
        mark_applied(connection, event_id, "ido.grants.v1", 0)
        connection.execute(insert(journal), [{
            "event_id": event_id, "line": 0, "event_type": "GrantAwarded", "kind": "awarded",
            "municipality_code": code, "year": 2024, "amount_cents": 100, "booked_on": date(2024, 1, 15),
            "recorded_at": "2024-01-15T00:00:00.000000Z", "stream_id": f"grant-2024-{code}",
        }])
    return event_id


def read(app: Flask, tokens: TokenFactory, event_id: str, code: str = AMSTERDAM, *token: str) -> Any:
    return app.test_client().get(
        BALANCES.format(code=code, event_id=event_id), headers=tokens.headers(*(token or ("municipality", code)))
    )


def read_waiting_in_the_one_place(
    app: Flask, tokens: TokenFactory, event_id: str
) -> tuple[threading.Thread, list[int]]:
    """A read of ``event_id`` in a thread of its own, returned once it waits in the one waiting place (max 1);
    its status is appended to the list when it ends."""
    projected_events = app.extensions["ledger"].queries.projected
    answers: list[int] = []
    waiting = threading.Thread(target=lambda: answers.append(read(app, tokens, event_id).status_code))
    waiting.start()
    deadline = time.monotonic() + 10
    while projected_events._waiters < 1 and time.monotonic() < deadline:
        threading.Event().wait(0.005)
    assert projected_events._waiters == 1
    return waiting, answers


def anonymous(answer: Any, event_id: str) -> tuple[int, str | None, dict[str, Any]]:
    """The answer with the asked id blanked: what a caller learns beyond the id it sent."""
    body = {**answer.json, "message": answer.json["message"].replace(event_id, "<id>")}
    body["errors"] = {k: [r.replace(event_id, "<id>") for r in v] for k, v in body["errors"].items()}
    return answer.status_code, answer.headers.get("Retry-After"), body


def test_an_id_no_one_recorded_is_answered_at_once_without_waiting(ledger: Any, waits: Waits) -> None:
    app, tokens = ledger
    unknown = str(uuid.uuid4())
    answer = read(app, tokens, unknown)
    assert waits.event_ids == []  # no thread held: the poller was never asked
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert "includes_event_id" in answer.json["errors"]


def test_the_callers_own_recorded_event_is_waited_for(ledger: Any, waits: Waits) -> None:
    app, tokens = ledger
    own = post_expenditure(app, tokens, AMSTERDAM)
    assert read(app, tokens, own).status_code == 503  # the spy: not projected within the wait
    assert waits.event_ids == [own]


def test_another_municipalitys_event_is_neither_waited_for_nor_revealed(ledger: Any, waits: Waits) -> None:
    app, tokens = ledger
    recorded = post_expenditure(app, tokens, UTRECHT)  # recorded, not projected
    projected = project_award(app, UTRECHT)  # projected already
    unknown = str(uuid.uuid4())
    as_unknown = anonymous(read(app, tokens, unknown), unknown)
    assert anonymous(read(app, tokens, recorded), recorded) == as_unknown
    assert anonymous(read(app, tokens, projected), projected) == as_unknown
    assert waits.event_ids == []
    # Utrecht itself, and a reading role, are answered from the projected event, and wait for the recorded one.
    assert read(app, tokens, projected, UTRECHT).status_code == 200
    assert read(app, tokens, projected, AMSTERDAM, "auditor").status_code == 200
    assert read(app, tokens, recorded, UTRECHT).status_code == 503
    assert waits.event_ids == [recorded]


def test_over_the_cap_a_read_gets_503_with_retry_after_at_once(ledger: Any) -> None:
    app, tokens = ledger
    first, second = post_expenditure(app, tokens, AMSTERDAM), post_expenditure(app, tokens, AMSTERDAM)
    waiting, answers = read_waiting_in_the_one_place(app, tokens, first)

    over = read(app, tokens, second)
    assert over.status_code == 503 and over.headers["Retry-After"] == "1"
    assert "IDO_READ_YOUR_WRITES_MAX_WAITERS" in over.json["message"]

    # the waiting read ends as soon as its event is projected
    project_expenditure(app, first, 0)
    waiting.join(30)
    assert answers == [200]


def test_the_callers_own_event_projected_already_is_answered_while_every_waiting_place_is_taken(ledger: Any) -> None:
    """The read after a posting waits with the poller without asking first (issue 17, row 5); with no waiting
    place left it asks itself, so an event projected already is answered 200, not refused as over the cap."""
    app, tokens = ledger
    first, second = post_expenditure(app, tokens, AMSTERDAM), post_expenditure(app, tokens, AMSTERDAM)
    waiting, answers = read_waiting_in_the_one_place(app, tokens, first)
    project_expenditure(app, second, 1)
    assert read(app, tokens, second).status_code == 200
    # the first read still waits: the second took no place
    assert app.extensions["ledger"].queries.projected._waiters == 1
    project_expenditure(app, first, 0)
    waiting.join(30)
    assert answers == [200]


def test_a_caller_naming_events_it_cannot_have_is_slowed_down_with_429(tmp_path: Path) -> None:
    """Past IDO_READ_YOUR_WRITES_UNANSWERED_PER_MINUTE unanswerable ids in 60 s a caller gets 429 with the
    window's Retry-After, before any lookup; another caller is not affected, nor the caller's reads
    without ``includes_event_id``."""
    settings = load_settings({
        "IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys"),
        "IDO_READ_YOUR_WRITES_UNANSWERED_PER_MINUTE": "3",
    })
    tokens = TokenFactory(settings)
    app = create_app(settings)
    try:
        client = app.test_client()
        flooder = tokens.headers("municipality", AMSTERDAM)
        statuses = [
            client.get(BALANCES.format(code=AMSTERDAM, event_id=uuid.uuid4()), headers=flooder).status_code
            for _ in range(5)
        ]
        assert statuses == [503, 503, 503, 429, 429]
        refused = client.get(BALANCES.format(code=AMSTERDAM, event_id=uuid.uuid4()), headers=flooder)
        assert refused.json["status"] == "too_many_requests"
        assert "IDO_READ_YOUR_WRITES_UNANSWERED_PER_MINUTE" in refused.json["message"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        plain = client.get(f"/v1/municipalities/{AMSTERDAM}/balances/2024", headers=flooder)
        assert plain.status_code == 200
        other = tokens.headers("municipality", UTRECHT)
        assert client.get(BALANCES.format(code=UTRECHT, event_id=uuid.uuid4()), headers=other).status_code == 503
    finally:
        app.extensions["ledger"].application.close()
