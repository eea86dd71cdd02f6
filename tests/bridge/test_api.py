"""The bridge HTTP API on both event stores (SQLite and PostgreSQL): roles, errors, flows, atomicity."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from contracts.envelope import validate_envelope
from services.bridge.application.app import BridgeApplication
from services.bridge.entrypoints.definition import DEFINITION, build_bridge_application, create_app
from services.common.config import Settings
from tests.support.tokens import TokenFactory

A, B, C = "NL-KVK-20000001", "NL-KVK-20000002", "NL-KVK-20000003"


@pytest.fixture
def application(settings: Settings) -> Iterator[BridgeApplication]:
    app = build_bridge_application(settings)
    yield app
    app.close()


@pytest.fixture
def client(settings: Settings, tokens: TokenFactory, application: BridgeApplication) -> FlaskClient:
    return create_app(settings, application).test_client()


@pytest.fixture
def kb(tokens: TokenFactory) -> dict[str, str]:
    return tokens.headers("kb")


def library(library_id: str, *pairs: tuple[str, int]) -> dict[str, Any]:
    return {
        "library_id": library_id,
        "name": f"Bibliotheek {library_id[-1]}",
        "service_area": [{"municipality_code": code, "inhabitants": count} for code, count in pairs],
    }


def setup_register(client: FlaskClient, kb: dict[str, str], frame_cents: int = 270_000_000) -> None:
    assert client.post("/bridge/frame", json={"frame_cents": frame_cents}, headers=kb).status_code == 201
    for body in (library(A, ("GM0363", 1000)), library(B, ("GM0599", 400)), library(C, ("GM0772", 60), ("GM1948", 40))):
        response = client.post("/bridge/libraries", json=body, headers=kb)
        assert response.status_code == 201, response.json


def test_only_the_kb_writes_and_municipalities_cannot_read(client: FlaskClient, tokens: TokenFactory) -> None:
    assert client.get("/bridge/libraries").status_code == 401
    for role in ("kb", "ministry", "auditor", "finance"):
        assert client.get("/bridge/libraries", headers=tokens.headers(role)).status_code == 200, role
    refused = client.get("/bridge/libraries", headers=tokens.headers("municipality", "GM0363"))
    assert refused.status_code == 403 and refused.json["status"] == "forbidden"
    for role in ("ministry", "auditor", "finance"):
        response = client.post("/bridge/frame", json={}, headers=tokens.headers(role))
        assert response.status_code == 403, role
    # the role is checked before the body: a bad body from a non-kb caller is still 403
    ministry = tokens.headers("ministry")
    assert client.post("/bridge/frame", json={"frame_cents": "x"}, headers=ministry).status_code == 403
    assert client.post("/bridge/frame", json={}, headers=tokens.headers("kb")).status_code == 201


def test_bad_input_is_answered_with_the_field_and_the_reason(client: FlaskClient, kb: dict[str, str]) -> None:
    body = {
        "library_id": "KVK 123",
        "name": "X",
        "service_area": [{"municipality_code": "0363", "inhabitants": 1.5}],
        "colour": "red",
    }
    response = client.post("/bridge/libraries", json=body, headers=kb)
    assert response.status_code == 422
    errors = response.json["errors"]
    assert set(errors) == {"library_id", "service_area.0.municipality_code", "service_area.0.inhabitants", "colour"}
    assert "NL-KVK" in errors["library_id"][0]
    client.post("/bridge/frame", json={}, headers=kb)
    response = client.post("/bridge/frame/amendments", json={"frame_cents": 1.5}, headers=kb)
    assert response.status_code == 422 and set(response.json["errors"]) == {"frame_cents", "reason"}
    float_rate = {"rate_cents_per_inhabitant": 0.15, "reason": "r"}
    response = client.post("/bridge/frame/amendments", json=float_rate, headers=kb)
    assert response.status_code == 422 and "rate_cents_per_inhabitant" in response.json["errors"]
    assert client.get("/bridge/libraries/NL-KVK-404", headers=kb).status_code == 404
    response = client.get("/bridge/libraries?municipality=Amsterdam", headers=kb)
    assert response.status_code == 422 and "municipality" in response.json["errors"]


def test_grants_payments_and_accounts(client: FlaskClient, kb: dict[str, str], tokens: TokenFactory) -> None:
    setup_register(client, kb)
    batch = client.post("/bridge/grant-batches", headers=kb)
    assert batch.status_code == 201, batch.json
    assert batch.json["total_cents"] == 15 * 1500
    grants = {grant["library_id"]: grant["amount_cents"] for grant in batch.json["grants"]}
    assert grants == {A: 15_000, B: 6_000, C: 1_500}

    too_much = {"amount_cents": 15_001, "paid_on": "2022-12-01"}
    paid = client.post(f"/bridge/libraries/{A}/payments", json=too_much, headers=kb)
    assert paid.status_code == 422 and "amount_cents" in paid.json["errors"]
    paid = client.post("/bridge/payment-batches", json={"paid_on": "2022-12-01"}, headers=kb)
    assert paid.status_code == 201 and paid.json["total_cents"] == 22_500

    account = {"spent_cents": 15_000, "submitted_on": "2023-09-01"}
    on_time = client.post(f"/bridge/libraries/{A}/account", json=account, headers=kb)
    assert on_time.status_code == 201 and on_time.json["account"]["late"] is False
    account = {"spent_cents": 5_000, "submitted_on": "2023-09-02"}
    late = client.post(f"/bridge/libraries/{B}/account", json=account, headers=kb)
    assert late.status_code == 201
    assert late.json["account"]["late"] is True
    assert late.json["reclaim"]["amount_cents"] == 1_000

    auditor = tokens.headers("auditor")
    late_list = client.get("/bridge/libraries?late=true", headers=auditor).json
    assert [item["library_id"] for item in late_list] == [B]
    overview = client.get("/bridge/overview", headers=tokens.headers("ministry")).json
    assert overview["committed_cents"] == overview["paid_cents"] == 22_500
    assert (overview["accounts_late"], overview["reclaimed_cents"]) == (1, 1_000)
    serving = client.get("/bridge/libraries?municipality=GM1948", headers=auditor).json
    assert [item["library_id"] for item in serving] == [C]

    events = client.get(f"/bridge/libraries/{B}/events", headers=auditor).json
    for envelope in events:
        validate_envelope(envelope)
    assert [e["event_type"] for e in events] == [
        "LibraryRegistered", "BridgeGrantSet", "BridgePaymentMade", "BridgeAccountSubmitted", "BridgeReclaimIssued",
    ]


def test_a_grant_batch_above_the_frame_changes_nothing(client: FlaskClient, kb: dict[str, str]) -> None:
    setup_register(client, kb, frame_cents=22_499)
    frame_events = client.get("/bridge/frame/events", headers=kb).json
    refused = client.post("/bridge/grant-batches", headers=kb)
    assert refused.status_code == 422
    assert refused.json["status"] == "rule_broken" and "total_cents" in refused.json["errors"]
    assert client.get("/bridge/frame/events", headers=kb).json == frame_events
    assert all(item["grant"] is None for item in client.get("/bridge/libraries", headers=kb).json)
    amended = client.post("/bridge/frame/amendments", json={"frame_cents": 22_500, "reason": "raised"}, headers=kb)
    assert amended.status_code == 200
    assert client.post("/bridge/grant-batches", headers=kb).status_code == 201


def test_a_single_grant_is_corrected_by_reference_within_the_frame(client: FlaskClient, kb: dict[str, str]) -> None:
    setup_register(client, kb, frame_cents=30_000)
    client.post("/bridge/grant-batches", headers=kb)
    current = client.get(f"/bridge/libraries/{A}", headers=kb).json["grant"]
    stale = client.put(f"/bridge/libraries/{A}/grant", json={"amount_cents": 1, "reason": "r"}, headers=kb)
    assert stale.status_code == 409 and "corrects_event_id" in stale.json["errors"]
    too_much = {"amount_cents": 22_501, "reason": "r", "corrects_event_id": current["event_id"]}
    refused = client.put(f"/bridge/libraries/{A}/grant", json=too_much, headers=kb)
    assert refused.status_code == 422 and "amount_cents" in refused.json["errors"]
    fits = {"amount_cents": 22_500, "reason": "r", "corrects_event_id": current["event_id"]}
    corrected = client.put(f"/bridge/libraries/{A}/grant", json=fits, headers=kb)
    assert corrected.status_code == 200 and corrected.json["grant"]["basis"] == "corrected"
    assert client.get("/bridge/frame", headers=kb).json["uncommitted_cents"] == 0


def test_a_concurrent_change_makes_the_batch_fail_whole(
    settings: Settings, client: FlaskClient, kb: dict[str, str], application: BridgeApplication
) -> None:
    setup_register(client, kb)
    other = build_bridge_application(settings)
    try:
        read_libraries = application._libraries

        def libraries_then_someone_else_writes() -> Any:
            found = read_libraries()
            other.set_grant(A, amount_cents=100, reason="entered meanwhile")
            return found

        application._libraries = libraries_then_someone_else_writes  # type: ignore[method-assign]
        response = client.post("/bridge/grant-batches", headers=kb)
        assert response.status_code == 409, response.json
        application._libraries = read_libraries  # type: ignore[method-assign]
        assert client.get("/bridge/frame", headers=kb).json["committed_cents"] == 100
        assert client.get(f"/bridge/libraries/{B}", headers=kb).json["grant"] is None
    finally:
        other.close()


def test_the_openapi_document_describes_the_api(client: FlaskClient) -> None:
    document = client.get("/openapi.json").json
    assert "/bridge/grant-batches" in document["paths"]
    register = document["paths"]["/bridge/libraries"]["post"]
    assert {"201", "401", "403", "409", "422"} <= set(register["responses"])
    assert "LibraryRegister" in document["components"]["schemas"]


def test_demo_data_loads_once(settings: Settings, application: BridgeApplication) -> None:
    assert DEFINITION.load_demo_data is not None
    DEFINITION.load_demo_data(settings, application)
    head = application.recorder.max_notification_id()
    DEFINITION.load_demo_data(settings, application)
    assert application.recorder.max_notification_id() == head
    libraries = application.libraries()
    assert len(libraries) >= 5
    assert any(len(item["service_area"]) == 2 for item in libraries)
    overview = application.overview()
    assert overview["committed_cents"] == 15 * overview["inhabitants"] == overview["paid_cents"]
    assert overview["spending_deadline"].isoformat() == "2023-05-01"


def test_a_retried_payment_or_payment_batch_with_its_key_pays_once(client: FlaskClient, kb: dict[str, str]) -> None:
    setup_register(client, kb)
    assert client.post("/bridge/grant-batches", headers=kb).status_code == 201
    payment = {"amount_cents": 5_000, "paid_on": "2022-12-01"}
    keyed = {**kb, "Idempotency-Key": "pay-A-1"}
    first = client.post(f"/bridge/libraries/{A}/payments", json=payment, headers=keyed)
    again = client.post(f"/bridge/libraries/{A}/payments", json=payment, headers=keyed)
    assert first.status_code == again.status_code == 201
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    other = client.post(f"/bridge/libraries/{A}/payments", json={**payment, "amount_cents": 1}, headers=keyed)
    assert other.status_code == 409 and "Idempotency-Key" in other.json["errors"]

    batch_keyed = {**kb, "Idempotency-Key": "batch-2022-12"}
    batch = client.post("/bridge/payment-batches", json={"paid_on": "2022-12-02"}, headers=batch_keyed)
    assert batch.status_code == 201 and batch.json["total_cents"] == 22_500 - 5_000
    replay = client.post("/bridge/payment-batches", json={"paid_on": "2022-12-02"}, headers=batch_keyed)
    assert (replay.status_code, replay.json) == (201, batch.json)
    overview = client.get("/bridge/overview", headers=kb).json
    assert overview["paid_cents"] == 22_500
