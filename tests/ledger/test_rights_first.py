"""A caller who may not reach a route's books gets 403 before anything of its request is read (routes.RIGHTS).

Each request below carries input the route refuses (a float amount, an empty body, a date that is none, a CSV
that is not one): the caller allowed on the route gets 422 for it, so the input is bad; a caller who may not
reach the books gets 403 all the same, and nothing is stored. Before the thirty-second round a municipality's
token sending a bad body to another municipality's books got the 422 (the body was read first).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from services.common.config import load_settings
from services.ledger.adapters.http.routes import BLUEPRINTS, RIGHTS
from services.ledger.entrypoints.definition import create_app
from tests.ledger.conftest import AMSTERDAM, OPEN_YEARS, UTRECHT
from tests.support.tokens import TokenFactory

BOOKS = f"/v1/municipalities/{AMSTERDAM}"
NOT_A_DATE = {"query_string": "as_of=nope"}
# (endpoint, method, path, the bad input, a caller allowed, a caller refused)
CASES: list[tuple[str, str, str, dict[str, Any], tuple[str, ...], tuple[str, ...]]] = [
    ("expenditures.post_expenditure", "POST", f"{BOOKS}/expenditures", {"json": {"amount_cents": 1.5}},
     ("municipality", AMSTERDAM), ("municipality", UTRECHT)),
    ("expenditures.post_expenditure", "POST", f"{BOOKS}/expenditures", {"json": {"amount_cents": 1.5}},
     ("municipality", AMSTERDAM), ("finance",)),
    ("expenditures.import_expenditures", "POST", f"{BOOKS}/expenditures:import",
     {"data": b"\xff\xfe not a CSV", "content_type": "text/csv"}, ("municipality", AMSTERDAM),
     ("municipality", UTRECHT)),
    ("expenditures.reverse_expenditure", "POST", f"{BOOKS}/expenditures/{uuid.uuid4()}/reversal", {"json": {}},
     ("municipality", AMSTERDAM), ("municipality", UTRECHT)),
    ("expenditures.close_year", "POST", f"{BOOKS}/years/2024/close", {"json": {}},
     ("ministry",), ("municipality", AMSTERDAM)),
    ("expenditures.declare_sisa_line", "POST", f"{BOOKS}/sisa/2024/declarations", {"json": {}},
     ("municipality", AMSTERDAM), ("municipality", UTRECHT)),
    ("expenditures.declare_sisa_line", "POST", f"{BOOKS}/sisa/2024/declarations", {"json": {}},
     ("ministry",), ("auditor",)),
    ("balances.municipality_balances", "GET", f"/v1/municipalities/{AMSTERDAM}/balances/2024", NOT_A_DATE,
     ("municipality", AMSTERDAM), ("municipality", UTRECHT)),
    ("balances.municipality_balances_csv", "GET", f"{BOOKS}/balances/2024.csv", NOT_A_DATE,
     ("auditor",), ("municipality", UTRECHT)),
    ("balances.sisa", "GET", f"{BOOKS}/sisa/2024", NOT_A_DATE, ("municipality", AMSTERDAM), ("kb",)),
    ("balances.sisa_csv", "GET", f"{BOOKS}/sisa/2024.csv", NOT_A_DATE, ("finance",), ("municipality", UTRECHT)),
    ("balances.settlement_proposal", "GET", f"{BOOKS}/years/2024/settlement-proposal", NOT_A_DATE,
     ("ministry",), ("municipality", UTRECHT)),
    ("balances.journal_csv", "GET", f"{BOOKS}/journal.csv", NOT_A_DATE, ("municipality", AMSTERDAM),
     ("municipality", UTRECHT)),
    ("balances.national_balances", "GET", "/v1/balances/2024", NOT_A_DATE, ("finance",), ("municipality", AMSTERDAM)),
    ("balances.national_balances_csv", "GET", "/v1/balances/2024.csv", NOT_A_DATE, ("auditor",), ("kb",)),
    ("balances.bridge_balances", "GET", "/v1/bridge", NOT_A_DATE, ("kb",), ("municipality", AMSTERDAM)),
]
NO_INPUT = {"expenditures.get_expenditure"}
"""Routes that read nothing of the request but its path: their right is checked first all the same."""


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[tuple[Flask, TokenFactory]]:
    settings = load_settings({
        "IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys"), **OPEN_YEARS,
    })
    tokens = TokenFactory(settings)
    app = create_app(settings)
    yield app, tokens
    app.extensions["ledger"].application.close()


def _send(client: FlaskClient, tokens: TokenFactory, method: str, path: str, request: dict[str, Any],
          who: tuple[str, ...]) -> Any:
    return client.open(path, method=method, headers=tokens.headers(*who), **request)


@pytest.mark.parametrize(
    ("endpoint", "method", "path", "bad", "allowed", "refused"), CASES,
    ids=[f"{case[0]}-{'-'.join(case[5])}" for case in CASES],
)
def test_a_refused_caller_gets_403_before_its_input_is_read(
    ledger: tuple[Flask, TokenFactory], endpoint: str, method: str, path: str, bad: dict[str, Any],
    allowed: tuple[str, ...], refused: tuple[str, ...],
) -> None:
    app, tokens = ledger
    client = app.test_client()
    assert _send(client, tokens, method, path, bad, allowed).status_code == 422  # the input is bad
    answer = _send(client, tokens, method, path, bad, refused)
    assert answer.status_code == 403, answer.json
    assert answer.json["errors"] == {}  # nothing said of the input
    keyed = client.open(path, method=method, headers={**tokens.headers(*refused), "Idempotency-Key": "k"}, **bad)
    assert keyed.status_code == 403  # nor an idempotency answer
    assert app.extensions["ledger"].application.recorder.max_notification_id() in (None, 0)  # nothing stored


def test_every_route_of_the_ledgers_api_has_its_right_checked_first(ledger: tuple[Flask, TokenFactory]) -> None:
    app, _ = ledger
    names = {blueprint.name for blueprint in BLUEPRINTS}
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint.partition(".")[0] in names}
    assert endpoints == set(RIGHTS)
    assert {case[0] for case in CASES} | NO_INPUT == endpoints  # each one's order is tested above


def test_the_path_of_an_expenditure_is_refused_to_another_municipality_first(
    ledger: tuple[Flask, TokenFactory],
) -> None:
    app, tokens = ledger
    path = f"{BOOKS}/expenditures/{uuid.uuid4()}"
    client = app.test_client()
    assert _send(client, tokens, "GET", path, {}, ("municipality", AMSTERDAM)).status_code == 404
    assert _send(client, tokens, "GET", path, {}, ("municipality", UTRECHT)).status_code == 403
