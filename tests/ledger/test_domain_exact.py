"""The ledger's input rules and its aggregates' events, to the exact reason, field and recorded value.

Written for the mutation check (issue 20, docs/DEVELOPING.md "Mutation check"): each assertion kills mutants
of ``rules.expenditure_errors``, ``Expenditure.record``/``reverse`` and ``Books.close`` that the other domain
tests let live. No store, no HTTP.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import pytest

from contracts.values import MAX_CENTS
from services.ledger.domain.errors import AlreadyReversed, InvalidExpenditure
from services.ledger.domain.grant_years import check_grant_year
from services.ledger.domain.model import Books, Expenditure, books_id, expenditure_aggregate_id
from services.ledger.domain.rules import expenditure_errors
from tests.ledger.test_domain import VALID, awarded

A = "GM0363"
ID = UUID("12345678-1234-5678-1234-567812345678")


def errors_of(**overrides: Any) -> dict[str, list[str]]:
    return expenditure_errors({**VALID, **overrides})


def test_every_input_rule_names_its_field_and_reason() -> None:
    assert errors_of() == {}
    assert errors_of(amount_cents=1) == {}
    assert errors_of(amount_cents=MAX_CENTS) == {}
    amount = [f"must be a whole number of cents from 1 to {MAX_CENTS}"]
    assert errors_of(amount_cents=0) == {"amount_cents": amount}
    assert errors_of(amount_cents=MAX_CENTS + 1) == {"amount_cents": amount}
    assert errors_of(amount_cents=True) == {"amount_cents": amount}
    assert errors_of(grant_year=2018, booked_on=date(2018, 3, 1)) == {
        "grant_year": ["must be a whole year between 2019 and 2100"]
    }
    assert errors_of(category="food") == {
        "category": ["must be one of library_funding, promotion, network_orchestration"]
    }
    assert errors_of(booked_on="2024-03-01") == {"booked_on": ["must be a date (YYYY-MM-DD)"]}
    assert errors_of(booked_on=date(2025, 1, 1)) == {
        "booked_on": ["must be a date within the grant year 2024, got 2025-01-01"]
    }
    assert errors_of(description=" ", reference=None, counterparty={"id": "", "name": "P"}) == {
        "description": ["must not be empty"],
        "reference": ["must not be empty"],
        "counterparty.id": ["must not be empty"],
    }
    assert errors_of(reference="R" * 101, counterparty={"id": "P", "name": "N" * 201}) == {
        "reference": ["must be at most 100 characters"],
        "counterparty.name": ["must be at most 200 characters"],
    }
    assert errors_of(reference="R" * 100, description="line one\nline two") == {}
    assert list(errors_of(reference="R\n1")) == ["reference"]  # one-line texts refuse a line break
    assert errors_of(category="library_funding", counterparty={"id": "PRINT-1", "name": "P"}) == {
        "counterparty.id": ["library_funding needs the library's identifier, e.g. NL-KVK-41215098"]
    }
    assert errors_of(category="library_funding", counterparty={"id": "NL-KVK-41215098", "name": "Bieb"}) == {}


def test_an_invalid_expenditure_is_refused_whole_with_every_reason() -> None:
    with pytest.raises(InvalidExpenditure) as refused:
        Expenditure.record(
            expenditure_id=ID, municipality_code=A, **{**VALID, "amount_cents": 0, "category": "food"},
            books=None, grant=awarded(),
        )
    assert refused.value.message == "the expenditure has invalid fields"
    assert refused.value.errors == {
        "category": ["must be one of library_funding, promotion, network_orchestration"],
        "amount_cents": [f"must be a whole number of cents from 1 to {MAX_CENTS}"],
    }


def test_a_recorded_expenditure_and_its_reversal_carry_every_figure() -> None:
    expenditure = Expenditure.record(
        expenditure_id=ID, municipality_code=A, **{**VALID, "counterparty": {"id": "P", "name": "N", "x": "y"}},
        books=None, grant=awarded(),
    )
    assert (expenditure.id, expenditure.partition_key) == (expenditure_aggregate_id(ID), A)
    recorded = expenditure.collect_events()[0]
    assert isinstance(recorded, Expenditure.Recorded)
    assert (recorded.expenditure_id, recorded.municipality_code, recorded.grant_year, recorded.category) == (
        str(ID), A, 2024, "promotion"
    )
    assert (recorded.amount_cents, recorded.booked_on, recorded.counterparty) == (
        1000, "2024-03-01", {"id": "P", "name": "N"}
    )
    assert (recorded.description, recorded.reference) == ("flyers", "R1")

    # a reversal on the expenditure's own day is allowed; the day before is not
    with pytest.raises(InvalidExpenditure) as refused:
        expenditure.reverse(reason="typo", booked_on=date(2024, 2, 29), today=date(2024, 6, 1), books=None)
    assert (refused.value.message, refused.value.field) == (
        "must not be before the expenditure's own booking date 2024-03-01", "booked_on"
    )
    with pytest.raises(InvalidExpenditure) as refused:
        expenditure.reverse(reason="bad\x00", booked_on=None, today=date(2024, 6, 1), books=None)
    assert refused.value.field == "reason"
    assert refused.value.message.startswith("must not contain")
    expenditure.reverse(reason="typo", booked_on=None, today=date(2024, 3, 1), books=None)
    reversed_ = expenditure.collect_events()[-1]
    assert isinstance(reversed_, Expenditure.Reversed)
    assert (reversed_.expenditure_id, reversed_.municipality_code, reversed_.grant_year, reversed_.category) == (
        str(ID), A, 2024, "promotion"
    )
    assert (reversed_.reverses_event_id, reversed_.amount_cents, reversed_.booked_on, reversed_.reason) == (
        recorded.event_id, 1000, "2024-03-01", "typo"
    )
    assert expenditure.reversal_event_id == reversed_.event_id
    with pytest.raises(AlreadyReversed) as again:
        expenditure.reverse(reason="typo", booked_on=None, today=date(2024, 3, 1), books=None)
    assert (again.value.message, again.value.field) == (
        f"expenditure {ID} was already reversed (event {reversed_.event_id}); an expenditure is reversed once",
        "expenditure_id",
    )


def test_a_reversal_given_its_event_id_records_it_so_a_rerun_knows_its_own() -> None:
    """The application derives it from the Idempotency-Key (docs/decisions.md, "A second reversal is refused")."""
    expenditure = Expenditure.record(expenditure_id=ID, municipality_code=A, **VALID, books=None, grant=awarded())
    own = "5a1f0d4e-0000-5000-8000-000000000001"
    expenditure.reverse(reason="typo", booked_on=None, today=date(2024, 3, 1), books=None, event_id=own)
    assert (expenditure.collect_events()[-1].event_id, expenditure.reversal_event_id) == (own, own)


def test_a_reversal_without_a_date_books_today_when_today_is_the_expenditures_own_day() -> None:
    expenditure = Expenditure.record(expenditure_id=ID, municipality_code=A, **VALID, books=None, grant=awarded())
    assert expenditure.reversal_day(date(2024, 3, 1)) == date(2024, 3, 1)
    assert expenditure.reversal_day(date(2024, 2, 1)) == date(2024, 3, 1)
    assert expenditure.reversal_day(date(2024, 3, 2)) == date(2024, 3, 2)


def test_a_year_closes_in_its_own_year_by_the_ministry_only_with_every_field_recorded() -> None:
    with pytest.raises(InvalidExpenditure) as refused:
        Books.close(
            books=None, municipality_code=A, grant_year=2024, closed_on=date(2024, 6, 1), closed_by="kb",
            final_account=False,
        )
    assert (refused.value.message, refused.value.field) == ("only the ministry closes a year", "closed_by")
    books = Books.close(
        books=None, municipality_code=A, grant_year=2024, closed_on=date(2024, 12, 31), closed_by="ministry",
        final_account=False,
    )
    assert (books.id, books.partition_key) == (books_id(A, 2024), A)
    closed = books.collect_events()[0]
    assert isinstance(closed, Books.Closed)
    assert (closed.municipality_code, closed.grant_year, closed.closed_on, closed.closed_by, closed.final_account) == (
        A, 2024, "2024-12-31", "ministry", False
    )


def test_a_reversal_booked_outside_the_grant_year_names_the_day() -> None:
    expenditure = Expenditure.record(expenditure_id=ID, municipality_code=A, **VALID, books=None, grant=awarded())
    with pytest.raises(InvalidExpenditure) as refused:
        expenditure.reverse(reason="typo", booked_on=date(2025, 1, 2), today=date(2025, 1, 2), books=None)
    assert (refused.value.message, refused.value.field) == (
        "must be a date within the grant year 2024, got 2025-01-02", "booked_on"
    )


def test_a_text_with_a_control_character_is_refused_with_the_reason() -> None:
    assert errors_of(description="bad\x00") == {
        "description": ["must not contain control characters (such as NUL, BEL, ESC or NEL) nor lone surrogates"]
    }


def test_the_standing_of_another_municipality_or_year_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="^the grant year GM0363 2024 passed for GM0344 2024$"):
        check_grant_year(awarded(), "GM0344", 2024, date(2024, 3, 1))


def test_a_close_given_its_event_id_records_it_so_a_rerun_knows_its_own() -> None:
    own = "5a1f0d4e-0000-5000-8000-000000000002"
    books = Books.close(
        books=None, municipality_code=A, grant_year=2024, closed_on=date(2024, 12, 31), closed_by="ministry",
        final_account=True, event_id=own,
    )
    assert books.collect_events()[0].event_id == own
