"""The CSV of an expenditure import: parsed and validated whole, every bad row named.

The amount is either ``amount_cents`` (whole cents, digits only, as the API's JSON) or ``amount``
(euros as a finance office writes them: ``125000.00``, ``1.250,00``, ``€ 1.250,00``; read by
``contracts.amounts``, which refuses ambiguous values such as ``1.250``). The separator is ``,`` or
``;``, decided by the header (``contracts.csv_input``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from contracts.amounts import AmountError, parse_euros
from contracts.csv_input import QUOTE_HINT, separator_of
from contracts.values import MAX_CENTS
from services.ledger.domain.rules import expenditure_errors

COLUMNS = (
    "grant_year",
    "category",
    "amount_cents",
    "booked_on",
    "counterparty_id",
    "counterparty_name",
    "description",
    "reference",
)
AMOUNT_COLUMNS = ("amount_cents", "amount")
"""Exactly one of them: ``amount_cents`` in place in COLUMNS, or ``amount`` (euros) instead of it."""
MAX_ROWS = 5000
WHOLE = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class ExpenditureTable:
    """An import read from a spreadsheet (XLSX): its header and each row's cells as text, with the row's
    line number in the sheet, checked by the same rules as a CSV."""

    header: list[str]
    rows: list[tuple[int, list[str]]]


def parse_expenditures(source: str | ExpenditureTable) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, list[str]]]:
    """A CSV's text or a spreadsheet's table, parsed and validated whole (see ``parse_expenditures_csv``)."""
    if isinstance(source, str):
        return parse_expenditures_csv(source)
    width = len(source.header)

    def raw_rows() -> Iterator[tuple[int, dict[str, str] | str]]:
        for line, cells in source.rows:
            yield line, dict(zip(source.header, cells, strict=True)) if len(cells) == width else ""

    return _parse(source.header, raw_rows(), "spreadsheet")


def parse_expenditures_csv(text: str) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, list[str]]]:
    """Returns ((line, typed row) ..., errors). Error keys are ``line <n>.<field>``; line 1 is the header."""
    separator = separator_of(text.split("\n", 1)[0])
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=separator, strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as error:
        return [], {"line 1": [f"not a readable CSV: {error}"]}

    def raw_rows() -> Iterator[tuple[int, dict[str, str] | str]]:
        """Each row, or the hint of a row with the wrong number of cells."""
        try:
            for raw in reader:
                if None in raw or any(value is None for value in raw.values()):
                    yield reader.line_num, QUOTE_HINT if separator == "," and None in raw else ""
                else:
                    yield reader.line_num, raw
        except csv.Error as error:
            raise _Unreadable(reader.line_num, f"not a readable CSV: {error}") from None

    return _parse(list(header), raw_rows(), "CSV")


class _Unreadable(Exception):
    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line = line
        self.reason = reason


def _parse(
    header: list[str], raw_rows: Iterator[tuple[int, dict[str, str] | str]], kind: str
) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    amounts = [c for c in AMOUNT_COLUMNS if c in header]
    missing = [
        "amount_cents (or amount, in euros)" if c == "amount_cents" else c
        for c in COLUMNS
        if c not in header and (c != "amount_cents" or not amounts)
    ]
    unknown = [c for c in header if c not in COLUMNS + AMOUNT_COLUMNS]
    if missing or unknown or len(amounts) != 1:
        reasons = []
        if missing:
            reasons.append(f"missing columns: {', '.join(missing)}")
        if unknown:
            reasons.append(f"unknown columns: {', '.join(unknown)}")
        if len(amounts) > 1:
            reasons.append("has both amount_cents and amount: give the amount once")
        return [], {"line 1": reasons}
    amount_column = amounts[0]
    width = len(COLUMNS)
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        for line, raw in raw_rows:
            if len(rows) >= MAX_ROWS:
                errors[f"line {line}"] = [f"too many rows: at most {MAX_ROWS} per import"]
                break
            if isinstance(raw, str):  # the wrong number of cells, with a hint or none
                errors[f"line {line}"] = [f"must have exactly {width} columns{raw}"]
                continue
            typed, row_errors = _typed(raw, amount_column)
            for field, reasons in expenditure_errors(typed).items():
                # the rules name amount_cents; the caller's file may carry the amount in euros
                field = amount_column if field == "amount_cents" else field
                row_errors.setdefault(field, reasons)
            for field, reasons in row_errors.items():
                errors[f"line {line}.{field.replace('counterparty.', 'counterparty_')}"] = reasons
            rows.append((line, typed))
    except _Unreadable as unreadable:
        errors[f"line {unreadable.line}"] = [unreadable.reason]
    if not rows and not errors:
        errors["_body"] = [f"the {kind} has no rows"]
    return rows, errors


def _typed(raw: dict[str, str], amount_column: str) -> tuple[dict[str, Any], dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    typed: dict[str, Any] = {
        "category": raw["category"].strip(),
        "counterparty": {"id": raw["counterparty_id"].strip(), "name": raw["counterparty_name"].strip()},
        "description": raw["description"].strip(),
        "reference": raw["reference"].strip(),
    }
    for field in ("grant_year", "amount_cents"):
        if field not in raw:
            continue
        value = raw[field].strip()
        if WHOLE.fullmatch(value):
            typed[field] = int(value)
        else:
            typed[field] = None
            reason = f"must be a whole number (digits only), got {value!r}"
            if field == "amount_cents":
                reason += "; an amount in euros (such as 1.250,00) goes in a column named amount instead"
            errors[field] = [reason]
    if amount_column == "amount":
        typed["amount_cents"] = None
        try:
            cents = parse_euros(raw["amount"])
        except AmountError as error:
            errors["amount"] = [error.reason]
        else:
            if 1 <= cents <= MAX_CENTS:
                typed["amount_cents"] = cents
            else:
                errors["amount"] = [f"must be from 0.01 to {MAX_CENTS // 100} euros, got {raw['amount'].strip()!r}"]
    try:
        typed["booked_on"] = date.fromisoformat(raw["booked_on"].strip())
    except ValueError:
        typed["booked_on"] = None
        errors["booked_on"] = [f"must be a date YYYY-MM-DD, got {raw['booked_on'].strip()!r}"]
    return typed, errors
