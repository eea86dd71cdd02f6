"""The CSV of an expenditure import: parsed and validated whole, every bad row named."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from typing import Any

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
MAX_ROWS = 5000
WHOLE = re.compile(r"^[0-9]+$")


def parse_expenditures_csv(text: str) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, list[str]]]:
    """Returns ((line, typed row) ..., errors). Error keys are ``line <n>.<field>``; line 1 is the header."""
    errors: dict[str, list[str]] = {}
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as error:
        return [], {"line 1": [f"not a readable CSV: {error}"]}
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown:
        reasons = []
        if missing:
            reasons.append(f"missing columns: {', '.join(missing)}")
        if unknown:
            reasons.append(f"unknown columns: {', '.join(unknown)}")
        return [], {"line 1": reasons}
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        for raw in reader:
            line = reader.line_num
            if len(rows) >= MAX_ROWS:
                errors[f"line {line}"] = [f"too many rows: at most {MAX_ROWS} per import"]
                break
            if None in raw or any(value is None for value in raw.values()):
                errors[f"line {line}"] = [f"must have exactly {len(COLUMNS)} columns"]
                continue
            typed, row_errors = _typed(raw)
            row_errors.update({k: v for k, v in expenditure_errors(typed).items() if k not in row_errors})
            for field, reasons in row_errors.items():
                errors[f"line {line}.{field.replace('counterparty.', 'counterparty_')}"] = reasons
            rows.append((line, typed))
    except csv.Error as error:
        errors[f"line {reader.line_num}"] = [f"not a readable CSV: {error}"]
    if not rows and not errors:
        errors["_body"] = ["the CSV has no rows"]
    return rows, errors


def _typed(raw: dict[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    typed: dict[str, Any] = {
        "category": raw["category"].strip(),
        "counterparty": {"id": raw["counterparty_id"].strip(), "name": raw["counterparty_name"].strip()},
        "description": raw["description"].strip(),
        "reference": raw["reference"].strip(),
    }
    for field in ("grant_year", "amount_cents"):
        value = raw[field].strip()
        if WHOLE.match(value):
            typed[field] = int(value)
        else:
            typed[field] = None
            errors[field] = [f"must be a whole number (digits only), got {value!r}"]
    try:
        typed["booked_on"] = date.fromisoformat(raw["booked_on"].strip())
    except ValueError:
        typed["booked_on"] = None
        errors["booked_on"] = [f"must be a date YYYY-MM-DD, got {raw['booked_on'].strip()!r}"]
    return typed, errors
