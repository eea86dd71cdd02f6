"""The balance's fast path (services/ledger/adapters/http/balance_fast_path.py) answers as the app does.

Two ledgers on one store (the same event store and view: what one records and projects the other reads) get the
same reads: one through its fast paths (as served), the other through its Flask app alone
(tests/ledger/fast_path_twins.py). Their status lines, headers, bodies and access-log lines must be equal, for
the reads the fast path takes and for every one it declines or whose work fails: a forged token, another
municipality's books, a role that may not read them, a query string it does not read itself, an event not
projected or no one's, a caller past its limit of such reads, an unreachable database, a fault. Only a made
request id and the duration differ.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError
from flask import Flask
from sqlalchemy import insert

from services.common.config import Settings, load_settings
from services.common.fast_path import FastPathOutOfStep, JsonGetFastPath
from services.common.http import DATABASE_BREAKER_KEY
from services.ledger.adapters.http import balance_fast_path
from services.ledger.adapters.http.balance_fast_path import install_balance_fast_path
from services.ledger.entrypoints.definition import create_app
from services.ledger.read_side.sql.view import journal
from tests.ledger.conftest import AMSTERDAM, OPEN_YEARS, UTRECHT
from tests.ledger.fast_path_twins import Twins, fast_paths, without_made_anew
from tests.ledger.test_read_your_writes_bounds import mark_applied, post_expenditure, project_award
from tests.support.json_logs import json_lines_on_root
from tests.support.tokens import TokenFactory

BALANCE = f"/v1/municipalities/{AMSTERDAM}/balances/2024"
UNANSWERED_PER_MINUTE = 2


def _same(answer: dict[str, Any], _request: dict[str, Any]) -> dict[str, Any]:
    """The answer without a made request id and the duration; a 429's Retry-After counts down the window's
    seconds (asserted apart)."""
    found = without_made_anew(answer)
    if found["status"].startswith("429"):
        found["headers"] = [(name, value) for name, value in found["headers"] if name != "Retry-After"]
    return found


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return load_settings({
        "IDO_DATA_DIR": str(tmp_path / "shared"), "IDO_KEYS_DIR": str(tmp_path / "keys"), "IDO_EVENT_STORE": "sqlite",
        "IDO_READ_YOUR_WRITES_TIMEOUT_MS": "50",
        "IDO_READ_YOUR_WRITES_UNANSWERED_PER_MINUTE": str(UNANSWERED_PER_MINUTE), **OPEN_YEARS,
    })


@pytest.fixture
def tokens(settings: Settings) -> TokenFactory:
    return TokenFactory(settings)


@pytest.fixture
def twins(settings: Settings, tokens: TokenFactory) -> Iterator[Twins]:
    with json_lines_on_root(logging.INFO) as lines:
        fast, plain = create_app(settings), create_app(settings)
        try:
            yield Twins(fast, plain, lines, method="GET", path=BALANCE, same=_same)
        finally:
            for app in (fast, plain):
                app.extensions["ledger"].application.close()


def _project_spending(app: Flask, event_id: str, offset: int, amount_cents: int) -> None:
    """The ledger's own posting as the projector leaves it in the view: its journal line and its mark."""
    with app.extensions["ledger"].queries.engine.begin() as connection:
        mark_applied(connection, event_id, "ido.expenditures.v1", offset)
        connection.execute(insert(journal), [{
            "event_id": event_id, "line": 1, "event_type": "ExpenditureRecorded", "kind": "spent",
            "municipality_code": AMSTERDAM, "year": 2024, "category": "promotion", "amount_cents": amount_cents,
            "booked_on": date(2024, 3, 1), "recorded_at": "2024-03-01T10:00:00.000000Z",
            "expenditure_id": str(uuid.uuid4()), "counterparty_id": "PRINT-1", "counterparty_name": "Drukkerij",
            "reference": "R-1", "description": "flyers", "reverses_event_id": None,
            "stream_id": f"expenditure-{event_id}",
        }])


def _auth(tokens: TokenFactory, *who: str, **token: Any) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {tokens.token(*who, **token)}"}}


def test_taken_and_declined_reads_are_answered_and_logged_alike(twins: Twins, tokens: TokenFactory) -> None:
    project_award(twins.fast, AMSTERDAM)
    projected = post_expenditure(twins.fast, tokens, AMSTERDAM)
    _project_spending(twins.fast, projected, 0, 12_345)
    recorded = post_expenditure(twins.fast, tokens, AMSTERDAM)  # recorded, not projected
    other = post_expenditure(twins.fast, tokens, UTRECHT)
    own = _auth(tokens, "municipality", AMSTERDAM)

    taken, _ = twins.send(**own)
    assert taken["status"] == "200 OK" and taken["taken"] == 1
    body = taken["body"]
    assert b'"awarded_cents":100' in body and b'"spent_cents":12345' in body and b'"promotion":12345' in body
    read, _ = twins.send(query_string=f"includes_event_id={projected}", **own)
    assert read["status"] == "200 OK" and read["taken"] == 1 and read["body"] == body
    for role in ("auditor", "finance", "ministry"):
        assert twins.send(**_auth(tokens, role))[0]["taken"] == 1

    # taken, and the app answers what the work raises: not projected within the wait, another's, no one's
    for event_id in (recorded, other, str(uuid.uuid4())):
        refused, _ = twins.send(query_string=f"includes_event_id={event_id}", **own)
        assert refused["taken"] == 1 and refused["status"].startswith("503"), event_id
        assert ("Retry-After", "1") in refused["headers"]
    # past the caller's limit of ids no one can answer for it (its own, not projected yet, is not counted)
    flooded, _ = twins.send(query_string=f"includes_event_id={uuid.uuid4()}", **own)
    assert flooded["taken"] == 1 and flooded["status"].startswith("429")
    assert 1 <= int(dict(flooded["headers"])["Retry-After"]) <= 60

    declined = {
        "no token": {},
        "a forged token": {"headers": {"Authorization": own["headers"]["Authorization"][:-4] + "AAAA"}},
        "an expired token": _auth(tokens, "municipality", AMSTERDAM, ttl=timedelta(seconds=-5)),
        "a token for another service": _auth(tokens, "municipality", AMSTERDAM, audience=["payments"]),
        "another municipality's books": _auth(tokens, "municipality", UTRECHT),
        "a role that may not read them": _auth(tokens, "kb"),
        "an upper-case id": {"query_string": f"includes_event_id={projected.upper()}", **own},
        "an id without hyphens": {"query_string": f"includes_event_id={projected.replace('-', '')}", **own},
        "an empty id": {"query_string": "includes_event_id=", **own},
        "not an id": {"query_string": "includes_event_id=nope", **own},
        "an escaped id": {"query_string": f"includes_event_id={projected.replace('-', '%2D')}", **own},
        "two ids": {"query_string": f"includes_event_id={projected}&includes_event_id={projected}", **own},
        "a date": {"query_string": "as_of=2024-06-30", **own},
        "an unknown parameter": {"query_string": "x=1", **own},
        "a body": {"data": b"{}", "content_type": "application/json", **own},
    }
    for name, request in declined.items():
        fast, _ = twins.send(**request)
        assert fast["taken"] == 0, name
        assert fast["status"][:3] in ("200", "400", "401", "403", "422", "429", "503"), name

    for path in (f"/v1/municipalities/{AMSTERDAM}/balances/02024", f"/v1/municipalities/{AMSTERDAM}/balances/2024/",
                 f"/v1/municipalities/{AMSTERDAM}/balances/2024.csv", "/v1/municipalities/GM03630/balances/2024",
                 f"/v1/municipalities/{AMSTERDAM}%2Fx/balances/2024", "/v1/municipalities//balances/2024"):
        fast, _ = twins.send(path=path, **own)
        assert fast["taken"] == 0, path
    for method in ("HEAD", "POST", "PUT"):
        assert twins.send(method=method, **own)[0]["taken"] == 0, method


def test_what_the_work_raises_is_answered_by_the_apps_own_handlers(
    twins: Twins, tokens: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = _auth(tokens, "municipality", AMSTERDAM)
    services = [app.extensions["ledger"] for app in (twins.fast, twins.plain)]

    def raises(error: BaseException) -> None:
        def balances(*_args: Any, **_kwargs: Any) -> Any:
            raise error
        for service in services:
            monkeypatch.setattr(service.queries, "balances", balances)

    raises(OperationalError("the server closed the connection"))
    away, _ = twins.send(**own)
    assert away["taken"] == 1 and away["status"].startswith("503")
    assert ("Retry-After", "2") in away["headers"]
    assert all(app.extensions[DATABASE_BREAKER_KEY].is_open() for app in (twins.fast, twins.plain))
    refused, _ = twins.send(**own)
    assert refused["taken"] == 0 and refused["status"].startswith("503")  # the open breaker: declined
    for app in (twins.fast, twins.plain):
        app.extensions[DATABASE_BREAKER_KEY].open_for_s = 0
        app.extensions[DATABASE_BREAKER_KEY].trip()
        app.testing = False  # a fault is answered 500, not raised into the test
    raises(RuntimeError("a fault"))
    fault, _ = twins.send(**own)
    assert fault["taken"] == 1 and fault["status"].startswith("500")

    for service in services:  # a text orjson would write otherwise than Flask: Flask writes it
        monkeypatch.setattr(service.queries, "balances", lambda *a, **k: {"municipality_code": "GM\u00e9"})
    escaped, _ = twins.send(**own)
    assert escaped["taken"] == 1 and escaped["body"] == b'{"municipality_code":"GM\\u00e9"}\n'


def test_the_balance_and_the_posting_each_have_their_fast_path(twins: Twins) -> None:
    [balance] = [layer for layer in fast_paths(twins.fast) if isinstance(layer, JsonGetFastPath)]
    assert balance.rule == "/v1/municipalities/<code>/balances/<int:year>"
    assert len(fast_paths(twins.fast)) == 2


def test_an_app_with_a_hook_it_does_not_know_gets_no_balance_fast_path(
    settings: Settings, tokens: TokenFactory
) -> None:
    app = create_app(settings)
    try:

        @app.after_request
        def _a_new_header(response: Any) -> Any:
            return response

        with pytest.raises(FastPathOutOfStep, match="_a_new_header"):
            install_balance_fast_path(app)
    finally:
        app.extensions["ledger"].application.close()


def test_twins_would_see_a_fast_path_that_answers_otherwise(
    twins: Twins, tokens: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison can fail: a fast path whose figure differs from the app's is caught."""
    original = balance_fast_path.balances_at
    monkeypatch.setattr(balance_fast_path, "balances_at", lambda *args: {**original(*args), "spent_cents": -1})
    with pytest.raises(AssertionError):
        twins.send(**_auth(tokens, "municipality", AMSTERDAM))
