"""Issue 16 over HTTP: tokens for the wrong service or without a subject, a lost revocation list,
Idempotency-Keys of two clients, and the dashboard behind an HTTPS proxy with its CSRF token.

One SQLite store per test (what is checked here is the same on PostgreSQL: it happens before any
store is asked)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from flask import Flask
from flask.testing import FlaskClient

from services.common.auth import ISSUER
from services.common.cli import main
from services.common.config import Settings, load_settings
from services.ledger.adapters.http.dashboard import COOKIE
from services.ledger.entrypoints.definition import create_app as create_ledger
from services.payments.entrypoints.definition import create_app as create_payments
from tests.support.dashboard import csrf_field, sign_in_form
from tests.support.tokens import TokenFactory

A, B = "GM0363", "GM0599"
EXPENDITURE = {
    "grant_year": 2024, "category": "promotion", "amount_cents": 1000, "booked_on": "2024-03-01",
    "counterparty": {"id": "PRINT-1", "name": "Printer"}, "description": "flyers", "reference": "R1",
}


def local_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys"),
        "IDO_YEARS_OPEN_BEFORE_AWARD": "2024", **extra,
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(local_env(tmp_path))


@pytest.fixture
def tokens(settings: Settings) -> TokenFactory:
    return TokenFactory(settings)


@contextmanager
def serve(create: Any, settings: Settings) -> Iterator[Flask]:
    app: Flask = create(settings)
    try:
        yield app
    finally:
        app.extensions["ido.operations"].close()
        ledger = app.extensions.get("ledger")
        (ledger.application if ledger else app.extensions["payments.application"]).close()


@pytest.fixture
def ledger(settings: Settings, tokens: TokenFactory) -> Iterator[FlaskClient]:
    with serve(create_ledger, settings) as app:
        yield app.test_client()


def refused_for(answer: Any, field: str) -> bool:
    return bool(answer.is_json and field in answer.json["errors"])


def test_a_token_for_the_ledger_is_no_payments_token(settings: Settings, tokens: TokenFactory) -> None:
    ledger_only = tokens.headers("ministry", audience=["ledger"])
    with serve(create_payments, settings) as app:
        answer = app.test_client().get("/v1/years/2024/grants", headers=ledger_only)
        assert answer.status_code == 401 and refused_for(answer, "Authorization"), answer.json
        assert "not for the payments service" in answer.json["message"]
        both = tokens.headers("ministry", audience=["ledger", "payments"])
        assert app.test_client().get("/v1/years/2024/grants", headers=both).status_code != 401


def test_a_token_without_a_subject_is_401_not_500(ledger: FlaskClient, settings: Settings) -> None:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": ["ledger"], "role": "ministry", "jti": str(uuid.uuid4()), "iat": now,
              "exp": now + 600}
    key = serialization.load_pem_private_key(settings.jwt_private_key_file.read_bytes(), None)
    token = jwt.encode(claims, key, algorithm="EdDSA")  # type: ignore[arg-type]
    answer = ledger.get("/v1/balances/2024", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401 and refused_for(answer, "Authorization"), answer.data
    assert "sub" in answer.json["message"]


def test_a_lost_revocation_list_refuses_every_token_with_503(
    ledger: FlaskClient, settings: Settings, tokens: TokenFactory, caplog: pytest.LogCaptureFixture
) -> None:
    headers = tokens.headers("ministry")
    assert ledger.get("/v1/balances/2024", headers=headers).status_code == 200
    settings.revoked_tokens_file.unlink()
    answer = ledger.get("/v1/balances/2024", headers=headers)
    assert answer.status_code == 503 and answer.is_json, answer.data
    assert "revocation list" in answer.json["message"]
    assert "revocation list unreadable" in caplog.text and str(settings.revoked_tokens_file) in caplog.text
    assert ledger.get("/dashboard/national/2024", headers=headers).status_code == 503


def test_two_clients_of_one_municipality_keep_their_own_idempotency_keys(
    ledger: FlaskClient, tokens: TokenFactory
) -> None:
    """The same key from the municipality's ERP and its import tool: two postings, not one answer
    for both (before, the posting's id derived from municipality and key only: the second got 409)."""
    erp = {**tokens.headers("municipality", A, subject="gm0363-erp"), "Idempotency-Key": "invoice-17"}
    tool = {**tokens.headers("municipality", A, subject="gm0363-import"), "Idempotency-Key": "invoice-17"}
    url = f"/v1/municipalities/{A}/expenditures"
    first = ledger.post(url, json=EXPENDITURE, headers=erp)
    second = ledger.post(url, json={**EXPENDITURE, "amount_cents": 2000}, headers=tool)
    assert (first.status_code, second.status_code) == (201, 201), second.json
    assert first.json["expenditure_id"] != second.json["expenditure_id"]
    again = ledger.post(url, json=EXPENDITURE, headers=erp)  # each client's retry is still its own
    assert again.status_code == 201 and again.json["expenditure_id"] == first.json["expenditure_id"]


def test_ministry_tokens_from_the_cli_never_share_key_space(
    ledger: FlaskClient, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two ministry clients, each with a token from `ido tokens issue`, happen to use the same key for
    different closings: both close (with one shared subject the second would get 409)."""
    monkeypatch.setenv("IDO_KEYS_DIR", str(settings.keys_dir))
    issued = []
    for _ in range(2):
        main(["tokens", "issue", "--role", "ministry", "--audience", "ledger", "--quiet"])
        issued.append(capsys.readouterr().out.strip())
    for code, token in zip((A, B), issued, strict=True):
        answer = ledger.post(
            f"/v1/municipalities/{code}/years/2024/close", json={"final_account": True},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "close-2024"},
        )
        assert answer.status_code == 201, answer.json


def test_the_auditor_closes_nothing(ledger: FlaskClient, tokens: TokenFactory) -> None:
    answer = ledger.post(f"/v1/municipalities/{A}/years/2024/close", json={"final_account": True},
                         headers=tokens.headers("auditor"))
    assert answer.status_code == 403, answer.json


def cookie_of(answer: Any, name: str) -> str:
    found = [c for c in answer.headers.getlist("Set-Cookie") if c.startswith(f"{name}=")]
    assert len(found) == 1, answer.headers.getlist("Set-Cookie")
    return str(found[0])


@pytest.mark.parametrize("trusted_proxies", ["1", "0"])
def test_behind_an_https_proxy_the_dashboard_cookie_is_secure(tmp_path: Path, trusted_proxies: str) -> None:
    settings = load_settings(local_env(tmp_path, IDO_TRUSTED_PROXIES=trusted_proxies))
    tokens = TokenFactory(settings)
    via_proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Host": "ido.example"}
    with serve(create_ledger, settings) as app:
        browser = app.test_client()
        form = browser.get("/dashboard/login", headers=via_proxy)
        token_field = csrf_field(browser)
        signed_in = browser.post(
            "/dashboard/login", data={**token_field, "token": tokens.token("auditor")}, headers=via_proxy
        )
        assert signed_in.status_code == 303, signed_in.data
        secure = trusted_proxies == "1"  # without the setting the header is anyone's word: not believed
        assert ("; Secure" in cookie_of(signed_in, COOKIE)) is secure
        assert ("; Secure" in cookie_of(form, "ido_csrf")) is secure


def test_a_login_post_without_this_browsers_csrf_token_is_refused(ledger: FlaskClient, tokens: TokenFactory) -> None:
    """Login CSRF: another site's form posts the attacker's token into the victim's browser."""
    token = tokens.token("municipality", A)
    attacks = {
        "no field, no cookie": {"token": token},
        "a field made up": {"token": token, "csrf_token": f"{int(time.time())}.{'0' * 64}"},
    }
    for name, form in attacks.items():
        answer = ledger.post("/dashboard/login", data=form)
        assert answer.status_code == 403 and COOKIE not in answer.headers.get("Set-Cookie", ""), name
        page = answer.get_data(as_text=True)
        assert "Niet aangemeld" in page and 'name="csrf_token"' in page, name  # a fresh form
    # The attacker's own valid field (fetched with the attacker's cookie) is worth nothing in the
    # victim's browser, which has another cookie or none.
    attacker = ledger.application.test_client()
    stolen = csrf_field(attacker)
    victim = ledger.application.test_client()
    csrf_field(victim)
    answer = victim.post("/dashboard/login", data={**stolen, "token": token})
    assert answer.status_code == 403 and COOKIE not in answer.headers.get("Set-Cookie", "")
    signed_in = victim.post("/dashboard/login", data=sign_in_form(victim, token))
    assert signed_in.status_code == 303
    # Signing out takes the field too, so another site cannot end the session either.
    assert victim.post("/dashboard/logout").status_code == 403
    assert victim.post("/dashboard/logout", data=csrf_field(victim, "/dashboard/")).status_code == 303


def test_readyz_says_when_the_revocation_list_cannot_be_read(ledger: FlaskClient, settings: Settings) -> None:
    """An instance that can only refuse tokens is not ready (a load balancer then sends it nothing)."""
    check = ledger.application.extensions["ido.operations"].extra_checks["revocation_list"]
    assert check().ok
    settings.revoked_tokens_file.unlink()
    unready = check()
    assert not unready.ok and unready.gating and "IDO_REVOKED_TOKENS_FILE" in unready.details["error"]
