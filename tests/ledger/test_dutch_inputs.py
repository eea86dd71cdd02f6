"""Issue 15 through HTTP: a Dutch expenditure CSV (`;`, `€ 1.250,00`), ambiguous amounts refused
with the line named and nothing stored, and the booking day of a reversal that names none."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import pytest
from flask.testing import FlaskClient

from services.ledger.application.app import LedgerApplication
from tests.ledger.conftest import AMSTERDAM, expenditure
from tests.support.tokens import TokenFactory

POST = f"/v1/municipalities/{AMSTERDAM}/expenditures"
DUTCH_HEADER = "grant_year;category;amount;booked_on;counterparty_id;counterparty_name;description;reference\n"


def own(tokens: TokenFactory, key: str | None = None) -> dict[str, str]:
    headers = tokens.headers("municipality", AMSTERDAM)
    if key:
        headers["Idempotency-Key"] = key
    return headers


def ledger(client: FlaskClient) -> LedgerApplication:
    app: LedgerApplication = client.application.extensions["ledger"].application
    return app


def stored_events(client: FlaskClient) -> int:
    return len(ledger(client).recorder.select_notifications(start=None, limit=1_000_000))


def imported_cents(client: FlaskClient, answer: dict[str, Any]) -> list[int]:
    found = [ledger(client).find_expenditure(UUID(e["expenditure_id"])) for e in answer["expenditures"]]
    return [e.amount_cents for e in found if e is not None]


def test_a_dutch_csv_with_semicolons_and_euro_amounts_is_imported_to_the_cent(
    client: FlaskClient, tokens: TokenFactory
) -> None:
    dutch = (
        "\ufeff"  # Excel's UTF-8 export starts with a byte order mark
        + DUTCH_HEADER
        + "2024;promotion;€ 1.250,50;2024-02-01;NL-KVK-1;Drukkerij, Zuid;Flyers;F-1\n"
        + "2024;library_funding;725.000,00;2024-02-02;NL-KVK-41215098;OBA;IDO Q1;F-2\n"
        + "2024;network_orchestration;75;2024-02-03;NL-KVK-2;Buurtteam;Overleg;F-3\n"
        + "2024;promotion;0,5;2024-02-04;NL-KVK-1;Drukkerij;Porto;F-4\n"
    )
    done = client.post(f"{POST}:import", data=dutch.encode(), content_type="text/csv", headers=own(tokens, "nl-1"))
    assert done.status_code == 201, done.json
    assert [e["line"] for e in done.json["expenditures"]] == [2, 3, 4, 5]
    assert imported_cents(client, done.json) == [125_050, 72_500_000, 7_500, 50]
    assert stored_events(client) == 4
    found = ledger(client).find_expenditure(UUID(done.json["expenditures"][0]["expenditure_id"]))
    assert found is not None and found.counterparty["name"] == "Drukkerij, Zuid"

    # the comma file keeps working, in cents or (new) in euros, a Dutch amount quoted
    plain = (
        "grant_year,category,amount,booked_on,counterparty_id,counterparty_name,description,reference\n"
        '2024,promotion,"1.000,00",2024-03-01,NL-KVK-1,Drukkerij,Flyers,F-5\n'
        "2024,promotion,12.5,2024-03-01,NL-KVK-1,Drukkerij,Flyers,F-6\n"
    )
    done = client.post(f"{POST}:import", data=plain, content_type="text/csv", headers=own(tokens))
    assert done.status_code == 201, done.json
    assert imported_cents(client, done.json) == [100_000, 1_250]


def test_an_ambiguous_amount_refuses_the_whole_import_naming_the_line_and_column(
    client: FlaskClient, tokens: TokenFactory
) -> None:
    bad = (
        DUTCH_HEADER
        + "2024;promotion;€ 1.250,00;2024-02-01;NL-KVK-1;Drukkerij;Flyers;F-1\n"
        + "2024;promotion;1.250;2024-02-01;NL-KVK-1;Drukkerij;Flyers;F-2\n"
        + "2024;promotion;1,234;2024-02-01;NL-KVK-1;Drukkerij;Flyers;F-3\n"
        + "2024;promotion;1.23.456,00;2024-02-01;NL-KVK-1;Drukkerij;Flyers;F-4\n"
        + "2024;promotion;12,345;2024-02-01;NL-KVK-1;Drukkerij;Flyers;F-5\n"
        + "2024;promotion;0,00;2024-02-01;NL-KVK-1;Drukkerij;Flyers;F-6\n"
    )
    refused = client.post(f"{POST}:import", data=bad, content_type="text/csv", headers=own(tokens, "nl-bad"))
    assert refused.status_code == 422, refused.json
    errors = refused.json["errors"]
    assert set(errors) == {"line 3.amount", "line 4.amount", "line 5.amount", "line 6.amount", "line 7.amount"}
    assert "ambiguous" in errors["line 3.amount"][0] and "'1.250'" in errors["line 3.amount"][0]
    assert "ambiguous" in errors["line 4.amount"][0]
    assert "misplaced thousands separators" in errors["line 5.amount"][0]
    assert "ambiguous" in errors["line 6.amount"][0]
    assert "from 0.01" in errors["line 7.amount"][0]
    assert "nothing was recorded" in refused.json["message"]
    assert stored_events(client) == 0

    # an amount in the cents column is still digits only, and an unquoted decimal comma is explained
    header = "grant_year,category,amount_cents,booked_on,counterparty_id,counterparty_name,description,reference\n"
    cents = header + "2024,promotion,1.250,2024-02-01,NL-KVK-1,D,F,F-1\n2024,promotion,1250,00,2024-02-01,X,D,F,F-2\n"
    refused = client.post(f"{POST}:import", data=cents, content_type="text/csv", headers=own(tokens))
    assert refused.status_code == 422 and set(refused.json["errors"]) == {"line 2.amount_cents", "line 3"}
    assert "column named amount" in refused.json["errors"]["line 2.amount_cents"][0]
    assert "quoted" in refused.json["errors"]["line 3"][0]
    both = header.replace("amount_cents", "amount_cents;amount").replace(",", ";")
    row = "1;2;3;4;5;6;7;8;9\n"
    refused = client.post(f"{POST}:import", data=both + row, content_type="text/csv", headers=own(tokens))
    assert refused.status_code == 422 and "give the amount once" in refused.json["errors"]["line 1"][0]
    assert stored_events(client) == 0


@pytest.mark.parametrize(
    ("today", "booked_on"),
    [
        (date(2026, 3, 2), "2024-03-15"),  # after the grant year: the expenditure's own date (was a 422)
        (date(2024, 6, 1), "2024-06-01"),  # within the grant year: today, as before
    ],
)
def test_a_reversal_without_a_date_books_today_within_the_grant_year_else_on_the_expenditures_date(
    client: FlaskClient, tokens: TokenFactory, today: date, booked_on: str
) -> None:
    posted = client.post(POST, json=expenditure(booked_on="2024-03-15"), headers=own(tokens)).json
    client.application.extensions["ledger"].application.today = lambda: today
    url = f"{POST}/{posted['expenditure_id']}/reversal"
    reversal = client.post(url, json={"reason": "invoice booked twice"}, headers=own(tokens, "rev-default"))
    assert reversal.status_code == 201, reversal.json
    assert reversal.json["reverses_event_id"] == posted["event_id"]
    stored = ledger(client).find_expenditure(UUID(posted["expenditure_id"]))
    assert stored is not None and stored.reversal_booked_on == booked_on
    retried = client.post(url, json={"reason": "invoice booked twice"}, headers=own(tokens, "rev-default"))
    assert (retried.status_code, retried.json) == (201, reversal.json)
    assert stored_events(client) == 2


def test_a_reversal_dated_outside_the_grant_year_is_still_refused(client: FlaskClient, tokens: TokenFactory) -> None:
    posted = client.post(POST, json=expenditure(), headers=own(tokens)).json
    client.application.extensions["ledger"].application.today = lambda: date(2026, 3, 2)
    refused = client.post(
        f"{POST}/{posted['expenditure_id']}/reversal",
        json={"reason": "x", "booked_on": "2026-03-02"},
        headers=own(tokens),
    )
    assert refused.status_code == 422 and "grant year 2024" in refused.json["errors"]["booked_on"][0]
    assert stored_events(client) == 1
