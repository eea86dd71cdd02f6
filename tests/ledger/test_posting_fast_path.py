"""The posting's fast path (services/common/fast_path.py) answers as the app does, request by request.

Two ledgers on stores of their own get the same requests: one through its fast path (as served), the other
through its Flask app alone (every fast path stepped around: tests/ledger/fast_path_twins.py). Their status
lines, headers, bodies, access-log lines, breakers and stored expenditures must be equal, for the postings the
fast path takes and for every one it declines or whose command fails: a forged token, another municipality's
books, a bad body, a reused key, an unknown year, an unreachable database, a fault. Only what is made anew each
time differs: an event's id (ordered by time), a key-less posting's ids, a made request id, the duration."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError
from flask import Flask

from services.common.config import Settings, load_settings
from services.common.errors import Unavailable
from services.common.fast_path import FastPathOutOfStep
from services.common.http import DATABASE_BREAKER_KEY, OUTBOX_GATE_KEY
from services.ledger.adapters.http.posting_fast_path import install_posting_fast_path
from services.ledger.entrypoints.definition import create_app
from tests.ledger.conftest import AMSTERDAM, OPEN_YEARS, UTRECHT, expenditure
from tests.ledger.fast_path_twins import Twins, without_made_anew
from tests.support.json_logs import json_lines_on_root
from tests.support.tokens import TokenFactory

POST = f"/v1/municipalities/{AMSTERDAM}/expenditures"


def _same(answer: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The answer without what is made anew for each request: an event's id, a key-less posting's ids too."""
    keyless = "Idempotency-Key" not in request.get("headers", {})
    return without_made_anew(
        answer, ("event_id", *(("expenditure_id", "stream_id") if keyless else ())),
        ("event_ids", *(("stream_ids",) if keyless else ())),
    )


def _settings(tmp_path: Any, name: str, **extra: str) -> Settings:
    return load_settings(
        {"IDO_DATA_DIR": str(tmp_path / name), "IDO_KEYS_DIR": str(tmp_path / "keys"), "IDO_EVENT_STORE": "sqlite",
         **OPEN_YEARS, **extra}
    )


@pytest.fixture
def twins_of(tmp_path: Any) -> Iterator[Callable[..., Twins]]:
    made: list[Flask] = []
    with json_lines_on_root(logging.INFO) as lines:

        def make(**extra: str) -> Twins:
            apps = [create_app(_settings(tmp_path, f"{name}{len(made)}", **extra)) for name in ("fast", "plain")]
            made.extend(apps)
            return Twins(apps[0], apps[1], lines, method="POST", path=POST, same=_same)

        try:
            yield make
        finally:
            for app in made:
                app.extensions["ledger"].application.close()


@pytest.fixture
def tokens(tmp_path: Any) -> TokenFactory:
    return TokenFactory(_settings(tmp_path, "tokens"))


def _stored(app: Flask) -> list[tuple[Any, ...]]:
    application = app.extensions["ledger"].application
    found = []
    for notification in application.recorder.select_notifications(start=1, limit=1000):
        event = application.mapper.to_domain_event(notification)
        made = ("event_id", "timestamp", "occurred_at", "hash", "previous_hash", "recorded_at")  # each event's own
        state = {key: value for key, value in vars(event).items() if key not in made}
        found.append(
            (notification.topic, str(notification.originator_id), json.dumps(state, default=str, sort_keys=True))
        )
    return found


def _json(body: Any, **headers: str) -> dict[str, Any]:
    return {"data": body if isinstance(body, bytes) else json.dumps(body), "content_type": "application/json",
            "headers": headers}


def test_taken_and_declined_postings_are_answered_logged_and_stored_alike(
    twins_of: Callable[..., Twins], tokens: TokenFactory
) -> None:
    twins = twins_of()
    own = tokens.headers("municipality", AMSTERDAM)["Authorization"]
    other = tokens.headers("municipality", UTRECHT)["Authorization"]
    finance = tokens.headers("finance")["Authorization"]
    expired = f"Bearer {tokens.token('municipality', AMSTERDAM, ttl=timedelta(seconds=-5))}"
    forged = own[:-4] + ("AAAA" if not own.endswith("AAAA") else "BBBB")
    payments_only = f"Bearer {tokens.token('municipality', AMSTERDAM, audience=['payments'])}"
    key = {"Idempotency-Key": "fast-1"}

    taken, _ = twins.send(**_json(expenditure(), Authorization=own, **key, **{"X-Request-Id": "ops-1"}))
    assert taken["status"] == "201 CREATED" and taken["taken"] == 1
    assert ("X-Request-Id", "ops-1") in taken["headers"]
    assert taken["access"][0]["event_types"] == ["ExpenditureRecorded"]

    declined_or_failed = {
        "the same again (answered from the stored one)": _json(expenditure(), Authorization=own, **key),
        "its key with another body (the command's 409)": _json(expenditure(amount_cents=1), Authorization=own, **key),
        "an unknown grant year (the command's 422)": _json(
            expenditure(grant_year=2023, booked_on="2023-03-15"), Authorization=own, **{"Idempotency-Key": "y"}
        ),
        "no token": _json(expenditure(), **{"Idempotency-Key": "a"}),
        "a forged token": _json(expenditure(), Authorization=forged, **{"Idempotency-Key": "b"}),
        "an expired token": _json(expenditure(), Authorization=expired, **{"Idempotency-Key": "c"}),
        "a token for another service": _json(expenditure(), Authorization=payments_only, **{"Idempotency-Key": "d"}),
        "another municipality's books": _json(expenditure(), Authorization=other, **{"Idempotency-Key": "e"}),
        "a reading role": _json(expenditure(), Authorization=finance, **{"Idempotency-Key": "f"}),
        "a float amount": _json(expenditure(amount_cents=1.0), Authorization=own, **{"Idempotency-Key": "g"}),
        "an unknown field": _json({**expenditure(), "municipality_code": UTRECHT}, Authorization=own),
        "a field missing": _json({k: v for k, v in expenditure().items() if k != "category"}, Authorization=own),
        "not JSON": _json(b"{nope", Authorization=own, **{"Idempotency-Key": "h"}),
        "too deep": _json(b"[" * 200 + b"]" * 200, Authorization=own),
        "over the body limit": _json(b" " * (1024 * 1024 + 1), Authorization=own),
        "a bad key": _json(expenditure(), Authorization=own, **{"Idempotency-Key": "k\x85"}),
        "another content type": {**_json(expenditure(), Authorization=own), "content_type": "text/plain"},
        "a charset": {**_json(expenditure(), Authorization=own, **{"Idempotency-Key": "i"}),
                      "content_type": "application/json; charset=utf-8"},
        "a query string": {**_json(expenditure(), Authorization=own, **{"Idempotency-Key": "j"}),
                           "query_string": "x=1"},
        "a bad request id": _json(expenditure(), Authorization=own, **{"Idempotency-Key": "l", "X-Request-Id": "a b"}),
    }
    for name, request in declined_or_failed.items():
        fast, _ = twins.send(**request)
        assert fast["status"][:3] in ("200", "201", "400", "401", "403", "409", "413", "415", "422"), name

    for path in (f"/v1/municipalities/{AMSTERDAM}/expenditures/", f"/v1/municipalities/{AMSTERDAM}%2Fx/expenditures",
                 "/v1/municipalities/GM03630/expenditures", "/v1/municipalities//expenditures"):
        fast, _ = twins.send(path=path, **_json(expenditure(), Authorization=own, **{"Idempotency-Key": "p"}))
        assert fast["taken"] == 0 and fast["status"][:3] in ("404", "308", "422"), path
    fast, _ = twins.send(method="PUT", **_json(expenditure(), Authorization=own))
    assert fast["status"].startswith("405")

    keyless, _ = twins.send(**_json(expenditure(reference="no key"), Authorization=own))
    assert keyless["status"] == "201 CREATED" and keyless["taken"] == 1

    fast_books, plain_books = _stored(twins.fast), _stored(twins.plain)
    assert len(fast_books) == 5  # fast-1, the answers 'i', 'j', 'l' and the key-less one (its own ids, made anew)
    assert fast_books[:4] == plain_books[:4]
    assert [topic for topic, _, _ in fast_books] == [topic for topic, _, _ in plain_books]


def test_what_the_command_raises_is_answered_by_the_apps_own_handlers(
    twins_of: Callable[..., Twins], tokens: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    twins = twins_of()
    own = tokens.headers("municipality", AMSTERDAM)["Authorization"]
    applications = [app.extensions["ledger"].application for app in (twins.fast, twins.plain)]

    def raises(error: BaseException) -> None:
        def record(*_args: Any, **_kwargs: Any) -> Any:
            raise error
        for application in applications:
            monkeypatch.setattr(application, "record_expenditure", record)

    raises(OperationalError("the server closed the connection"))
    away, _ = twins.send(**_json(expenditure(), Authorization=own, **{"Idempotency-Key": "db"}))
    assert away["taken"] == 1 and away["status"].startswith("503")
    assert ("Retry-After", "2") in away["headers"]
    assert ("http", "WARNING", "database unreachable: OperationalError") in [
        (logger.rpartition(".")[2], level, message) for logger, level, message in away["others"]
    ]
    assert all(app.extensions[DATABASE_BREAKER_KEY].is_open() for app in (twins.fast, twins.plain))
    refused, _ = twins.send(**_json(expenditure(), Authorization=own, **{"Idempotency-Key": "db"}))
    assert refused["taken"] == 0 and refused["status"].startswith("503")  # the open breaker: declined, the app says so
    for app in (twins.fast, twins.plain):
        app.extensions[DATABASE_BREAKER_KEY].open_for_s = 0
        app.extensions[DATABASE_BREAKER_KEY].trip()

    for app in (twins.fast, twins.plain):
        app.testing = False  # a fault is answered 500, not raised into the test
    raises(RuntimeError("a fault"))
    fault, _ = twins.send(**_json(expenditure(), Authorization=own, **{"Idempotency-Key": "fault"}))
    assert fault["taken"] == 1 and fault["status"].startswith("500")

    for application in applications:  # a text orjson would write otherwise than Flask: Flask writes it
        monkeypatch.setattr(application, "record_expenditure", lambda *a, **k: (201, {"municipality_code": "GM\u00e9"}))
    escaped, _ = twins.send(**_json(expenditure(), Authorization=own, **{"Idempotency-Key": "text"}))
    assert escaped["taken"] == 1 and escaped["body"] == b'{"municipality_code":"GM\\u00e9"}\n'


def test_the_gate_and_the_write_limit_refuse_alike(
    twins_of: Callable[..., Twins], tokens: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    twins = twins_of(IDO_WRITE_RATE_LIMIT_PER_MINUTE="2")
    own = tokens.headers("municipality", AMSTERDAM)["Authorization"]
    answers = [twins.send(**_json(expenditure(reference=f"R{n}"), Authorization=own, **{"Idempotency-Key": f"r{n}"}))[0]
               for n in range(3)]
    assert [answer["status"][:3] for answer in answers] == ["201", "201", "429"]
    assert [answer["taken"] for answer in answers] == [1, 1, 0]

    twins = twins_of()
    for app in (twins.fast, twins.plain):
        monkeypatch.setattr(app.extensions[OUTBOX_GATE_KEY], "refusal", lambda: Unavailable("stalled", retry_after_s=5))
    stalled, _ = twins.send(**_json(expenditure(), Authorization=own, **{"Idempotency-Key": "gate"}))
    assert stalled["taken"] == 0 and stalled["status"].startswith("503")
    assert _stored(twins.fast) == _stored(twins.plain) == []


def test_an_app_with_a_hook_it_does_not_know_gets_no_fast_path(tmp_path: Any, tokens: TokenFactory) -> None:
    app = create_app(_settings(tmp_path, "hooked"))
    try:

        @app.before_request
        def _a_new_check() -> None:
            pass

        with pytest.raises(FastPathOutOfStep, match="_a_new_check"):
            install_posting_fast_path(app)
    finally:
        app.extensions["ledger"].application.close()
