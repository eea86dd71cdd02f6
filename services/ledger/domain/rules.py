"""The rules of one expenditure's input, written once.

``Expenditure.record`` enforces them, the CSV import names each row's breaches with them, and the
HTTP schema declares the same published bounds (``contracts.events.expenditures``) so that the
OpenAPI document shows them. Input is typed already (grant_year int, booked_on a date, ...).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from contracts.identifiers import FIRST_YEAR, LAST_YEAR, is_org_id, is_year
from contracts.text import text_problem
from contracts.values import CATEGORIES, MAX_CENTS, TEXT_LIMITS

MULTI_LINE = frozenset({"description"})
"""Free prose, which may hold TAB and line breaks; the other texts are one line (``contracts/text.py``)."""


def in_year_reason(value: date, year: int) -> str | None:
    if value.year != year:
        return f"must be a date within the grant year {year}, got {value.isoformat()}"
    return None


def expenditure_errors(data: dict[str, Any]) -> dict[str, list[str]]:
    """Field -> reasons; empty when the expenditure may be recorded."""
    errors: dict[str, list[str]] = {}

    def fail(field: str, reason: str) -> None:
        errors.setdefault(field, []).append(reason)

    year = data.get("grant_year")
    if not is_year(year):
        fail("grant_year", f"must be a whole year between {FIRST_YEAR} and {LAST_YEAR}")
    if data.get("category") not in CATEGORIES:
        fail("category", f"must be one of {', '.join(CATEGORIES)}")
    amount = data.get("amount_cents")
    if type(amount) is not int or not 1 <= amount <= MAX_CENTS:
        fail("amount_cents", f"must be a whole number of cents from 1 to {MAX_CENTS}")
    booked_on = data.get("booked_on")
    if not isinstance(booked_on, date):
        fail("booked_on", "must be a date (YYYY-MM-DD)")
    elif type(year) is int and (reason := in_year_reason(booked_on, year)):
        fail("booked_on", reason)
    counterparty = data.get("counterparty") or {}
    texts = {
        "description": data.get("description"),
        "reference": data.get("reference"),
        "counterparty.id": counterparty.get("id"),
        "counterparty.name": counterparty.get("name"),
    }
    for field, value in texts.items():
        if not isinstance(value, str) or not value.strip():
            fail(field, "must not be empty")
        elif problem := text_problem(value, multi_line=field in MULTI_LINE):
            # NUL cannot be stored in PostgreSQL text, and no other control character belongs in the books.
            fail(field, problem)
        elif len(value) > TEXT_LIMITS[field]:
            fail(field, f"must be at most {TEXT_LIMITS[field]} characters")
    party_id = counterparty.get("id")
    if data.get("category") == "library_funding" and isinstance(party_id, str) and party_id.strip():
        if not is_org_id(party_id):
            fail("counterparty.id", "library_funding needs the library's identifier, e.g. NL-KVK-41215098")
    return errors
