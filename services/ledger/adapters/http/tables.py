"""The ledger's tables as files: the API's CSVs, and the dashboard's downloads for people.

The API's CSV columns are a contract (amounts in integer cents, dates and times as ISO 8601 text).
People get the same rows in a spreadsheet's terms (``for_people``): amounts as euros in ``*_eur``
columns, dates as dates and times as times (UTC), either as XLSX or as a CSV that Dutch Excel opens
(``;`` and a decimal comma).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Response

from contracts.canonical import parse_utc
from services.common.csv_output import STANDARD, CsvDialect, csv_text, csv_text_of_mappings
from services.common.spreadsheet import EURO_FORMAT, xlsx_bytes
from services.ledger.read_side import SISA_CSV_COLUMNS, balance_columns, flat_balance, sisa_csv_rows

BALANCE_COLUMNS = ["municipality_code", "year", *balance_columns(categories_first=True), "as_of", "known_at"]
NATIONAL_COLUMNS = [
    *BALANCE_COLUMNS,
    # added in issue 15, after the published columns: the flags of the national view
    "settlement_reported_spending_cents",
    "settlement_differs_from_books",
    "sisa_late",
]
JOURNAL_COLUMNS = [
    "event_id",
    "event_type",
    "expenditure_id",
    "grant_year",
    "category",
    "amount_cents",
    "booked_on",
    "recorded_at",
    "counterparty_id",
    "counterparty_name",
    "reference",
    "description",
    "reverses_event_id",
]
DATE_COLUMNS = frozenset({"booked_on", "as_of", "declared_on", "deadline"})
TIME_COLUMNS = frozenset({"recorded_at", "known_at"})
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Table:
    name: str
    """The file's name without its extension, e.g. ``journal-GM0363-2024``."""
    columns: Sequence[str]
    rows: Sequence[Mapping[str, Any]]


def balance_table(balance: dict[str, Any], code: str, year: int) -> Table:
    return Table(f"balances-{code}-{year}", BALANCE_COLUMNS, [flat_balance(balance)])


def national_table(answer: dict[str, Any], year: int) -> Table:
    rows = [
        flat_balance(
            r, year=year, as_of=answer["as_of"], known_at=answer["known_at"],
            sisa_late=r["sisa"]["late"] if r["sisa"] is not None else None,
        )
        for r in answer["municipalities"]
    ]
    return Table(f"balances-{year}", NATIONAL_COLUMNS, rows)


def sisa_table(answer: dict[str, Any], code: str, year: int) -> Table:
    return Table(f"sisa-{code}-{year}", list(SISA_CSV_COLUMNS), sisa_csv_rows(answer))


def journal_table(rows: Iterable[Mapping[str, Any]], code: str, year: int | None) -> Table:
    return Table(f"journal-{code}" + (f"-{year}" if year is not None else ""), JOURNAL_COLUMNS, list(rows))


def csv_response(table: Table, dialect: CsvDialect = STANDARD) -> Response:
    # A municipality's own texts (description, reference, counterparty, reason) are in these cells:
    # the shared writer keeps them from running as formulas where the ministry opens the file.
    if dialect == STANDARD:
        body = csv_text_of_mappings(table.columns, table.rows)
    else:
        header, rows = for_people(table)
        body = csv_text(header, rows, dialect)
    return _attachment(body.encode("utf-8"), "text/csv; charset=utf-8", f"{table.name}.csv")


def xlsx_response(table: Table) -> Response:
    header, rows = for_people(table)
    formats = {name: EURO_FORMAT for name in header if name.endswith("_eur")}
    return _attachment(xlsx_bytes(table.name, header, rows, formats), XLSX_TYPE, f"{table.name}.xlsx")


def for_people(table: Table) -> tuple[list[str], list[list[Any]]]:
    """The table in a spreadsheet's terms: ``x_cents`` becomes ``x_eur`` (a Decimal), dates and times typed."""
    header = [column.removesuffix("_cents") + "_eur" if column.endswith("_cents") else column
              for column in table.columns]
    rows = [[_for_people(column, row.get(column)) for column in table.columns] for row in table.rows]
    return header, rows


def _for_people(column: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if column.endswith("_cents") and isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value).scaleb(-2)
    if column in DATE_COLUMNS:
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    if column in TIME_COLUMNS:
        moment = value if isinstance(value, datetime) else parse_utc(str(value))
        return moment.replace(tzinfo=None)  # spreadsheets have no time zones: UTC, as the header says
    return value


def _attachment(body: bytes, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
