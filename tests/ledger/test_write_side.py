"""The ledger's write side through HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import RecordConflictError
from flask import jsonify
from flask.testing import FlaskClient

from services.common.fast_path import JsonPostFastPath
from services.common.idempotency import (
    ABANDONED_AFTER_S,
    EXTENSION_KEY,
    KEY_RULE,
    Claim,
    StoredAnswer,
    request_fingerprint,
    request_keys,
)
from services.ledger.adapters.http.routes import expenditures
from services.ledger.adapters.http.schemas import ExpenditureRecordedOut
from services.ledger.application.app import LedgerApplication
from tests.ledger.conftest import AMSTERDAM, UTRECHT, expenditure
from tests.ledger.fast_path_twins import fast_paths
from tests.support.tokens import TokenFactory

POST = f"/v1/municipalities/{AMSTERDAM}/expenditures"
CSV = (
    "grant_year,category,amount_cents,booked_on,counterparty_id,counterparty_name,description,reference\n"
    "2024,promotion,1000,2024-05-01,SUP-1,Supplier 1,flyers,imp-1\n"
)


def stored_events(client: FlaskClient) -> int:
    app: LedgerApplication = client.application.extensions["ledger"].application
    # counted, not the highest id: PostgreSQL's ids have gaps where a retry's insert was refused
    return len(app.recorder.select_notifications(start=None, limit=1_000_000))


def own(tokens: TokenFactory, key: str | None = None) -> dict[str, str]:
    headers = tokens.headers("municipality", AMSTERDAM)
    if key:
        headers["Idempotency-Key"] = key
    return headers


def test_posting_answers_201_and_a_retry_gets_the_same_answer_recording_nothing_new(
    client: FlaskClient, tokens: TokenFactory
) -> None:
    first = client.post(POST, json=expenditure(), headers=own(tokens, "key-1"))
    assert first.status_code == 201, first.json
    assert set(first.json) >= {"expenditure_id", "event_id"}
    count = stored_events(client)
    again = client.post(POST, json=expenditure(), headers=own(tokens, "key-1"))
    assert (again.status_code, again.json) == (201, first.json)
    assert stored_events(client) == count == 1

    other = client.post(POST, json=expenditure(amount_cents=1), headers=own(tokens, "key-1"))
    assert other.status_code == 409
    assert "Idempotency-Key" in other.json["errors"]
    assert stored_events(client) == 1

    fresh = client.post(POST, json=expenditure(), headers=own(tokens, "key-2"))
    assert fresh.status_code == 201 and fresh.json["expenditure_id"] != first.json["expenditure_id"]
    without_key = client.post(POST, json=expenditure(), headers=own(tokens))
    assert without_key.status_code == 201
    assert stored_events(client) == 3


def test_a_postings_answer_has_the_bytes_of_its_schemas_dump(client: FlaskClient, tokens: TokenFactory) -> None:
    """The 201 is written by orjson (services/common/json_answer.py), not by ExpenditureRecordedOut and jsonify:
    its bytes must be theirs, for a first answer, a retry's and a posting without a key (issue 17)."""
    answers = [
        client.post(POST, json=expenditure(), headers=own(tokens, "bytes-1")),
        client.post(POST, json=expenditure(), headers=own(tokens, "bytes-1")),
        client.post(POST, json=expenditure(), headers=own(tokens)),
    ]
    for answer in answers:
        assert (answer.status_code, answer.mimetype) == (201, "application/json")
        with client.application.app_context():
            expected = jsonify(ExpenditureRecordedOut().dump(answer.json)).get_data()
        assert answer.get_data() == expected
        assert set(answer.json) == set(ExpenditureRecordedOut().fields)


def abandon_claims(client: FlaskClient, answered: bool) -> None:
    """As a crash after the save leaves the claims: no answer stored (or none at all), claimed long ago."""
    keys = client.application.extensions[EXTENSION_KEY]
    with keys.engine.begin() as connection:
        if answered:
            connection.execute(request_keys.delete())
        else:
            connection.execute(request_keys.update().values(
                status=None, body=None, created_at=datetime.now(UTC) - timedelta(seconds=ABANDONED_AFTER_S + 1)))


@pytest.mark.parametrize("answered", [False, True], ids=["claim-left-open", "claim-lost"])
def test_a_retry_after_a_crash_between_the_events_and_the_answer_answers_the_same(
    client: FlaskClient, tokens: TokenFactory, answered: bool
) -> None:
    posted = client.post(POST, json=expenditure(), headers=own(tokens)).json
    reversal = f"{POST}/{posted['expenditure_id']}/reversal"
    imports = f"{POST}:import"
    close = f"/v1/municipalities/{AMSTERDAM}/years/2023/close"
    writes: list[tuple[str, dict[str, Any]]] = [
        (reversal, {"json": {"reason": "booked twice", "booked_on": "2024-04-01"}, "headers": own(tokens, "rev")}),
        (imports, {"data": CSV, "content_type": "text/csv", "headers": own(tokens, "imp")}),
        (close, {"json": {"final_account": False}, "headers": {**tokens.headers("ministry"), "Idempotency-Key": "c"}}),
    ]
    first = [client.post(url, **kwargs) for url, kwargs in writes]
    assert [f.status_code for f in first] == [201, 201, 201], [f.json for f in first]
    count = stored_events(client)
    abandon_claims(client, answered)
    again = [client.post(url, **kwargs) for url, kwargs in writes]
    assert [(a.status_code, a.json) for a in again] == [(f.status_code, f.json) for f in first]
    assert stored_events(client) == count

    abandon_claims(client, answered)
    changed = client.post(reversal, json={"reason": "another reason"}, headers=own(tokens, "rev"))
    assert changed.status_code == 409  # already reversed: nothing new either way
    assert stored_events(client) == count


def test_a_concurrent_retry_waits_for_the_first_answer(client: FlaskClient, tokens: TokenFactory) -> None:
    posted = client.post(POST, json=expenditure(), headers=own(tokens)).json
    reversal = f"{POST}/{posted['expenditure_id']}/reversal"
    body = {"reason": "booked twice", "booked_on": "2024-04-01"}
    keys = client.application.extensions[EXTENSION_KEY]
    with client.application.test_request_context(reversal, method="POST", json=body):
        fingerprint = request_fingerprint()
    caller = f"municipality:{AMSTERDAM}"  # the token's role and subject
    claim = keys.claim(caller, "slow", fingerprint)  # a first request, still running
    assert isinstance(claim, Claim)
    threading.Timer(0.3, keys.complete, (caller, "slow", StoredAnswer(201, '{"first": true}'))).start()
    started = time.monotonic()
    waited = client.post(reversal, json=body, headers=own(tokens, "slow"))
    assert (waited.status_code, waited.json) == (201, {"first": True}), waited.json
    assert waited.headers["Idempotent-Replayed"] == "true" and time.monotonic() - started >= 0.25
    other = client.post(reversal, json={**body, "reason": "other"}, headers=own(tokens, "slow"))
    assert other.status_code == 409 and "Idempotency-Key" in other.json["errors"]
    assert stored_events(client) == 1  # only the posting: the answer came from the first request


def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(client: FlaskClient, tokens: TokenFactory) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (expenditure(amount_cents=12.5), "amount_cents"),
        (expenditure(amount_cents="1250"), "amount_cents"),
        (expenditure(amount_cents=100.0), "amount_cents"),
        (expenditure(amount_cents=0), "amount_cents"),
        (expenditure(amount_cents=True), "amount_cents"),
        (expenditure(category="coffee"), "category"),
        (expenditure(booked_on="2023-12-31"), "booked_on"),
        (expenditure(booked_on="15-03-2024"), "booked_on"),
        (expenditure(grant_year="2024"), "grant_year"),
        (expenditure(counterparty={"id": "Bieb", "name": "Bieb"}), "counterparty.id"),
        (expenditure(counterparty={"name": "x"}), "counterparty.id"),
        (expenditure(reference=""), "reference"),
        (expenditure(amount=5), "amount"),
        ({k: v for k, v in expenditure().items() if k != "description"}, "description"),
    ]
    for body, field in cases:
        response = client.post(POST, json=body, headers=own(tokens))
        assert response.status_code == 422, (body, response.json)
        assert field in response.json["errors"], (field, response.json)
    bad_path = client.post("/v1/municipalities/GMXXXX/expenditures", json=expenditure(), headers=own(tokens))
    assert bad_path.status_code == 422 and "municipality_code" in bad_path.json["errors"]
    assert stored_events(client) == 0


def test_scopes_municipality_own_books_only_readers_write_nothing(client: FlaskClient, tokens: TokenFactory) -> None:
    other = client.post(f"/v1/municipalities/{UTRECHT}/expenditures", json=expenditure(), headers=own(tokens))
    assert other.status_code == 403
    for role in ("auditor", "finance", "ministry", "kb"):
        response = client.post(POST, json=expenditure(), headers=tokens.headers(role))
        assert response.status_code == 403, role
    assert client.post(POST, json=expenditure()).status_code == 401
    assert stored_events(client) == 0
    assert client.get(f"/v1/municipalities/{UTRECHT}/balances/2024", headers=own(tokens)).status_code == 403
    assert client.get(f"/v1/municipalities/{AMSTERDAM}/balances/2024", headers=own(tokens)).status_code == 200
    for role in ("auditor", "finance", "ministry"):
        assert (
            client.get(f"/v1/municipalities/{UTRECHT}/balances/2024", headers=tokens.headers(role)).status_code == 200
        )
        assert client.get("/v1/balances/2024", headers=tokens.headers(role)).status_code == 200
    assert client.get("/v1/balances/2024", headers=own(tokens)).status_code == 403
    close = f"/v1/municipalities/{AMSTERDAM}/years/2024/close"
    assert client.post(close, json={"final_account": True}, headers=own(tokens)).status_code == 403
    assert client.post(close, json={"final_account": True}, headers=tokens.headers("finance")).status_code == 403
    assert stored_events(client) == 0


def test_reversal_references_the_original_and_happens_once(client: FlaskClient, tokens: TokenFactory) -> None:
    posted = client.post(POST, json=expenditure(), headers=own(tokens)).json
    url = f"{POST}/{posted['expenditure_id']}/reversal"
    reversal = client.post(url, json={"reason": "wrong invoice", "booked_on": "2024-04-01"}, headers=own(tokens))
    assert reversal.status_code == 201, reversal.json
    assert reversal.json["reverses_event_id"] == posted["event_id"]
    again = client.post(url, json={"reason": "wrong invoice", "booked_on": "2024-04-01"}, headers=own(tokens))
    assert again.status_code == 409
    assert "already reversed" in again.json["message"]
    assert stored_events(client) == 2
    shown = client.get(f"{POST}/{posted['expenditure_id']}", headers=tokens.headers("auditor")).json
    assert shown["reversed"] is True and shown["amount_cents"] == 125_000  # nothing updated or deleted

    utrecht = client.post(
        url, json={"reason": "x", "booked_on": "2024-04-01"}, headers=tokens.headers("municipality", UTRECHT)
    )
    assert utrecht.status_code == 403
    missing = client.post(
        f"{POST}/00000000-0000-0000-0000-000000000000/reversal", json={"reason": "x"}, headers=own(tokens)
    )
    assert missing.status_code == 404
    second = client.post(POST, json=expenditure(), headers=own(tokens)).json
    early = client.post(
        f"{POST}/{second['expenditure_id']}/reversal",
        json={"reason": "x", "booked_on": "2024-01-01"},
        headers=own(tokens),
    )
    assert early.status_code == 422 and "booked_on" in early.json["errors"]


def test_a_second_reversal_is_refused_with_a_new_key_or_none_and_a_retry_of_the_first_gets_its_answer(
    client: FlaskClient, tokens: TokenFactory
) -> None:
    """Reversed once (docs/decisions.md, "A second reversal is refused"): only the first request's key
    and request answer 201 again, also once its claim is gone (abandoned, or lost with a crash)."""
    posted = client.post(POST, json=expenditure(), headers=own(tokens)).json
    url = f"{POST}/{posted['expenditure_id']}/reversal"
    body = {"reason": "wrong invoice", "booked_on": "2024-04-01"}
    first = client.post(url, json=body, headers=own(tokens, "rev-1"))
    assert first.status_code == 201, first.json
    count = stored_events(client)
    refusal = {
        "code": 409,
        "status": "conflict",
        "message": f"expenditure {posted['expenditure_id']} was already reversed (event {first.json['event_id']}); "
        "an expenditure is reversed once",
        "errors": {"expenditure_id": [
            f"expenditure {posted['expenditure_id']} was already reversed (event {first.json['event_id']}); "
            "an expenditure is reversed once"
        ]},
    }
    for headers in (own(tokens, "rev-2"), own(tokens)):
        second = client.post(url, json=body, headers=headers)
        assert (second.status_code, second.json) == (409, refusal), second.json
    # another client of the same municipality with the same key: its own key, so a second reversal
    colleague = {**tokens.headers("municipality", AMSTERDAM, subject=f"{AMSTERDAM}-desk-2"), "Idempotency-Key": "rev-1"}
    assert client.post(url, json=body, headers=colleague).status_code == 409
    assert stored_events(client) == count

    replayed = client.post(url, json=body, headers=own(tokens, "rev-1"))
    assert (replayed.status_code, replayed.json, replayed.headers["Idempotent-Replayed"]) == (201, first.json, "true")
    for answered in (False, True):
        abandon_claims(client, answered)
        rerun = client.post(url, json=body, headers=own(tokens, "rev-1"))
        assert (rerun.status_code, rerun.json) == (201, first.json)
        assert "Idempotent-Replayed" not in rerun.headers  # run again, recognised by its derived event id
    assert stored_events(client) == count


def test_closing_a_closed_year_is_refused_with_a_new_key_or_none_and_a_retry_of_the_first_gets_its_answer(
    client: FlaskClient, tokens: TokenFactory
) -> None:
    """A year closes once (docs/decisions.md, "A second reversal is refused", its last point): as a reversal."""
    close = f"/v1/municipalities/{AMSTERDAM}/years/2024/close"
    body = {"final_account": True, "closed_on": "2024-12-31"}
    ministry = tokens.headers("ministry")
    first = client.post(close, json=body, headers={**ministry, "Idempotency-Key": "close-1"})
    assert first.status_code == 201, first.json
    count = stored_events(client)
    refusal = {
        "code": 409, "status": "conflict",
        "message": f"the grant year 2024 was already closed for {AMSTERDAM} on 2024-12-31",
        "errors": {"year": [f"the grant year 2024 was already closed for {AMSTERDAM} on 2024-12-31"]},
    }
    for headers in ({**ministry, "Idempotency-Key": "close-2"}, ministry):
        again = client.post(close, json=body, headers=headers)
        assert (again.status_code, again.json) == (409, refusal), again.json
    assert stored_events(client) == count
    for answered in (False, True):
        abandon_claims(client, answered)
        rerun = client.post(close, json=body, headers={**ministry, "Idempotency-Key": "close-1"})
        assert (rerun.status_code, rerun.json) == (201, first.json)
    assert stored_events(client) == count


def test_a_closed_year_refuses_postings_and_reversals(client: FlaskClient, tokens: TokenFactory) -> None:
    posted = client.post(POST, json=expenditure(), headers=own(tokens)).json
    close = f"/v1/municipalities/{AMSTERDAM}/years/2024/close"
    closed = client.post(
        close, json={"final_account": True, "closed_on": "2025-06-30"}, headers=tokens.headers("ministry")
    )
    assert closed.status_code == 201, closed.json
    assert closed.json["closed_by"] == "ministry" and closed.json["final_account"] is True
    count = stored_events(client)

    refused = client.post(POST, json=expenditure(), headers=own(tokens))
    assert refused.status_code == 409
    assert "closed" in refused.json["message"] and "2024" in refused.json["message"]
    reversal = client.post(
        f"{POST}/{posted['expenditure_id']}/reversal",
        json={"reason": "x", "booked_on": "2024-05-01"},
        headers=own(tokens),
    )
    assert reversal.status_code == 409 and "closed" in reversal.json["message"]
    twice = client.post(close, json={"final_account": False}, headers=tokens.headers("ministry"))
    assert twice.status_code == 409
    assert stored_events(client) == count
    # another year and another municipality are still open
    assert (
        client.post(POST, json=expenditure(grant_year=2025, booked_on="2025-01-02"), headers=own(tokens)).status_code
        == 201
    )
    utrecht = client.post(
        f"/v1/municipalities/{UTRECHT}/expenditures",
        json=expenditure(),
        headers=tokens.headers("municipality", UTRECHT),
    )
    assert utrecht.status_code == 201


HEADER = "grant_year,category,amount_cents,booked_on,counterparty_id,counterparty_name,description,reference\n"


def test_import_is_atomic_and_names_every_bad_row(client: FlaskClient, tokens: TokenFactory) -> None:
    url = f"{POST}:import"
    bad = (
        HEADER
        + "2024,promotion,50000,2024-02-01,NL-KVK-1,Drukkerij,Flyers,F-1\n"
        + "2024,promotion,12.50,2024-02-01,NL-KVK-1,Drukkerij,Flyers,F-2\n"
        + "2024,coffee,100,2023-02-01,NL-KVK-1,Drukkerij,Flyers,F-3\n"
        + "2024,library_funding,100,2024-02-01,Bieb,Bieb,Funding,F-4\n"
    )
    refused = client.post(url, data=bad, content_type="text/csv", headers=own(tokens))
    assert refused.status_code == 422, refused.json
    assert set(refused.json["errors"]) == {
        "line 3.amount_cents",
        "line 4.category",
        "line 4.booked_on",
        "line 5.counterparty_id",
    }
    assert stored_events(client) == 0

    good = (
        HEADER
        + "2024,promotion,50000,2024-02-01,NL-KVK-1,Drukkerij,Flyers,F-1\n"
        + "2024,library_funding,200000,2024-02-02,NL-KVK-41215098,OBA,IDO Q1,F-2\n"
        + "2024,network_orchestration,7500,2024-02-03,NL-KVK-2,Buurtteam,Meeting,F-3\n"
    )
    done = client.post(url, data=good, content_type="text/csv", headers=own(tokens, "import-1"))
    assert done.status_code == 201, done.json
    assert done.json["count"] == 3 and [e["line"] for e in done.json["expenditures"]] == [2, 3, 4]
    assert stored_events(client) == 3
    retried = client.post(url, data=good, content_type="text/csv", headers=own(tokens, "import-1"))
    assert (retried.status_code, retried.json) == (201, done.json)
    assert stored_events(client) == 3

    client.post(
        f"/v1/municipalities/{AMSTERDAM}/years/2023/close",
        json={"final_account": False, "closed_on": "2024-05-01"},
        headers=tokens.headers("ministry"),
    )
    events = stored_events(client)
    into_closed = HEADER + "2024,promotion,1,2024-02-01,X,Y,Z,R\n2023,promotion,1,2023-02-01,X,Y,Z,R\n"
    refused = client.post(url, data=into_closed, content_type="text/csv", headers=own(tokens))
    assert refused.status_code == 409 and set(refused.json["errors"]) == {"line 3.grant_year"}
    assert stored_events(client) == events
    assert client.post(url, data="a,b\n1,2\n", content_type="text/csv", headers=own(tokens)).status_code == 422


def test_every_endpoint_is_documented_with_schemas_and_errors(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").json
    paths = spec["paths"]
    expected = {
        "/v1/municipalities/{code}/expenditures": "post",
        "/v1/municipalities/{code}/expenditures:import": "post",
        "/v1/municipalities/{code}/expenditures/{expenditure_id}/reversal": "post",
        "/v1/municipalities/{code}/years/{year}/close": "post",
        "/v1/municipalities/{code}/balances/{year}": "get",
        "/v1/municipalities/{code}/balances/{year}.csv": "get",
        "/v1/balances/{year}": "get",
        "/v1/balances/{year}.csv": "get",
        "/v1/municipalities/{code}/sisa/{year}": "get",
        "/v1/municipalities/{code}/journal.csv": "get",
    }
    for path, method in expected.items():
        operation = paths[path][method]
        responses = operation["responses"]
        assert {"401", "403", "422"} <= set(responses), path
        assert any(code.startswith("2") for code in responses), path
    post = paths["/v1/municipalities/{code}/expenditures"]["post"]
    assert "requestBody" in post and "409" in post["responses"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert "503" in paths["/v1/municipalities/{code}/balances/{year}"]["get"]["responses"]


def test_one_key_syntax_for_postings_and_the_claimed_writes(client: FlaskClient, tokens: TokenFactory) -> None:
    assert client.post(POST, json=expenditure(), headers=own(tokens, "a key with spaces")).status_code == 201
    for bad in ("k" * 201, "bad\x01key"):
        refused = client.post(POST, json=expenditure(), headers=own(tokens, bad))
        assert refused.status_code == 422 and "Idempotency-Key" in refused.json["errors"], refused.json
        imported = client.post(f"{POST}:import", data=CSV, content_type="text/csv", headers=own(tokens, bad))
        assert imported.status_code == 422 and "Idempotency-Key" in imported.json["errors"], imported.json
    assert stored_events(client) == 1


def test_a_reversal_that_loses_many_races_is_decided_again(
    client: FlaskClient, tokens: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    posted = client.post(POST, json=expenditure(), headers=own(tokens)).json
    app: LedgerApplication = client.application.extensions["ledger"].application
    save = app.save
    lost: list[int] = []

    def loses_eight_races(*aggregates: Any, **kwargs: Any) -> Any:
        if len(lost) < 8:  # more than the 5 plain retries the ledger had of its own
            lost.append(1)
            raise RecordConflictError("another writer saved this version first")
        return save(*aggregates, **kwargs)

    monkeypatch.setattr(app, "save", loses_eight_races)
    url = f"{POST}/{posted['expenditure_id']}/reversal"
    reversal = client.post(url, json={"reason": "x", "booked_on": "2024-04-01"}, headers=own(tokens))
    assert reversal.status_code == 201, reversal.json
    assert len(lost) == 8 and stored_events(client) == 2


# issue 17, twenty-fourth round: the body's fast check (services/common/body_check.py); thirtieth round: a posting
# that passes it is answered by the route's fast path (services/common/fast_path.py), one it does not pass by the
# route through webargs and marshmallow
def test_the_posting_takes_the_fast_path_and_a_refusal_is_marshmallows(
    client: FlaskClient, tokens: TokenFactory
) -> None:
    parser = expenditures.ARGUMENTS_PARSER
    [fast_path] = [layer for layer in fast_paths(client.application) if isinstance(layer, JsonPostFastPath)]
    headers = own(tokens)
    before, headers_before, taken_before = parser.fast_loads, parser.fast_header_loads, fast_path.taken
    answer = client.post(POST, json=expenditure(), headers={**headers, "Idempotency-Key": "fast-1"})
    assert answer.status_code == 201, answer.json
    assert fast_path.taken == taken_before + 1
    assert (parser.fast_loads, parser.fast_header_loads) == (before, headers_before)  # the route's parser not asked

    refused = client.post(POST, json=expenditure(amount_cents=1.0), headers={**headers, "Idempotency-Key": "fast-2"})
    assert refused.status_code == 422
    assert refused.json["errors"] == {"amount_cents": ["Not a valid integer."]}
    assert fast_path.taken == taken_before + 1  # declined: the route answered
    assert parser.fast_loads == before
    assert parser.fast_header_loads == headers_before + 1  # the route read its key the fast way

    bad_key = client.post(POST, json=expenditure(), headers={**headers, "Idempotency-Key": "k\x85"})
    assert bad_key.status_code == 422
    assert bad_key.json["errors"] == {"Idempotency-Key": [KEY_RULE]}
    assert fast_path.taken == taken_before + 1
    assert parser.fast_header_loads == headers_before + 1
