"""Rules of one expenditure's input, shared by the JSON endpoint and the CSV import."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from contracts.events.expenditures import CATEGORIES
from contracts.events.fields import MAX_CENTS

ORG_ID = re.compile(r"^[A-Z]{2}-[A-Z0-9]{2,10}-[A-Za-z0-9._-]{1,60}$")
LIMITS = {"description": 500, "reference": 100, "counterparty.name": 200, "counterparty.id": 100}


CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab and line breaks stay allowed


def expenditure_errors(data: dict[str, Any]) -> dict[str, list[str]]:
    """Field -> reasons for typed input (grant_year int, amount_cents int, booked_on date, ...)."""
    errors: dict[str, list[str]] = {}

    def fail(field: str, reason: str) -> None:
        errors.setdefault(field, []).append(reason)

    year = data.get("grant_year")
    if type(year) is not int or not 2019 <= year <= 2100:
        fail("grant_year", "must be a whole year between 2019 and 2100")
    if data.get("category") not in CATEGORIES:
        fail("category", f"must be one of {', '.join(CATEGORIES)}")
    amount = data.get("amount_cents")
    if type(amount) is not int or not 1 <= amount <= MAX_CENTS:
        fail("amount_cents", f"must be a whole number of cents from 1 to {MAX_CENTS}")
    booked_on = data.get("booked_on")
    if not isinstance(booked_on, date):
        fail("booked_on", "must be a date (YYYY-MM-DD)")
    elif type(year) is int and booked_on.year != year:
        fail("booked_on", f"must be a date within the grant year {year}, got {booked_on.isoformat()}")
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
        elif CONTROL_CHARACTERS.search(value):
            # NUL cannot be stored in PostgreSQL text, and no other control character belongs in the books.
            fail(field, "must not contain control characters")
        elif len(value) > LIMITS[field]:
            fail(field, f"must be at most {LIMITS[field]} characters")
    party_id = counterparty.get("id")
    if data.get("category") == "library_funding" and isinstance(party_id, str) and party_id.strip():
        if not ORG_ID.match(party_id):
            fail("counterparty.id", "library_funding needs the library's identifier, e.g. NL-KVK-41215098")
    return errors
