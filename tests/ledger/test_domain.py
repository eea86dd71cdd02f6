"""The ledger's invariants on its aggregates alone: no store, no HTTP."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import uuid4

import pytest

from services.common.domain.chained import stream_uuid
from services.ledger.domain.errors import (
    AlreadyReversed,
    GrantYearUnknown,
    InvalidExpenditure,
    MunicipalityMerged,
    YearAlreadyClosed,
    YearIsClosed,
)
from services.ledger.domain.grant_years import GrantYear
from services.ledger.domain.model import Books, Expenditure, books_id, books_stream
from services.ledger.domain.rules import expenditure_errors

A = "GM0363"
TODAY = date(2024, 6, 1)


VALID: dict[str, Any] = {
    "grant_year": 2024,
    "category": "promotion",
    "amount_cents": 1000,
    "booked_on": date(2024, 3, 1),
    "counterparty": {"id": "PRINT-1", "name": "Printer"},
    "description": "flyers",
    "reference": "R1",
}


def awarded(year: int = 2024, code: str = A, **merger: Any) -> GrantYear:
    return GrantYear(code, year, awarded=True, open_before_award=False, **merger)


def record(books: Books | None = None, grant: GrantYear | None = None, **overrides: Any) -> Expenditure:
    fields = {**VALID, **overrides}
    if grant is None:
        grant = awarded(fields["grant_year"] if isinstance(fields["grant_year"], int) else 2024)
    return Expenditure.record(expenditure_id=uuid4(), municipality_code=A, **fields, books=books, grant=grant)


def closed(year: int = 2024, code: str = A) -> Books:
    return Books.close(
        books=None,
        municipality_code=code,
        grant_year=year,
        closed_on=date(2025, 6, 30),
        closed_by="ministry",
        final_account=True,
    )


def test_a_closed_year_refuses_postings_naming_the_year_and_who_closed_it() -> None:
    assert record(books=None).amount_cents == 1000
    with pytest.raises(YearIsClosed) as refused:
        record(books=closed())
    assert refused.value.errors == {"grant_year": [refused.value.message]}
    assert refused.value.message == (
        "the grant year 2024 is closed for GM0363 (closed on 2025-06-30 by the ministry); "
        "postings and reversals into a closed year are refused"
    )


def test_the_books_of_another_year_or_municipality_are_a_programming_error_not_an_open_year() -> None:
    with pytest.raises(ValueError, match="GM0363 2023"):
        record(books=closed(2023))
    with pytest.raises(ValueError, match="GM0344 2024"):
        record(books=closed(code="GM0344"))


def test_a_closed_year_refuses_reversals_before_any_other_reason() -> None:
    expenditure = record()
    expenditure.reverse(reason="typo", booked_on=date(2024, 4, 1), today=TODAY, books=None)
    with pytest.raises(AlreadyReversed):
        expenditure.reverse(reason="again", booked_on=date(2024, 4, 2), today=TODAY, books=None)
    with pytest.raises(YearIsClosed):
        expenditure.reverse(reason="again", booked_on=date(2024, 4, 2), today=TODAY, books=closed())
    with pytest.raises(YearIsClosed):
        record().reverse(reason="x", booked_on=date(2024, 5, 1), today=TODAY, books=closed())


@pytest.mark.parametrize(
    ("today", "booked_on"),
    [
        (date(2024, 6, 1), date(2024, 6, 1)),  # within the grant year: today, as before
        (date(2024, 3, 1), date(2024, 3, 1)),  # the expenditure's own day is today
        (date(2026, 1, 10), date(2024, 3, 1)),  # after the grant year: the expenditure's own date
        (date(2023, 12, 1), date(2024, 3, 1)),  # before it (an expenditure booked ahead)
        (date(2024, 2, 1), date(2024, 3, 1)),  # within the year but before the expenditure's day
    ],
)
def test_a_reversal_without_a_date_books_today_or_else_on_the_expenditures_own_date(
    today: date, booked_on: date
) -> None:
    expenditure = record()  # booked on 2024-03-01
    expenditure.reverse(reason="wrong invoice", booked_on=None, today=today, books=None)
    assert expenditure.reversal_booked_on == booked_on.isoformat()


def test_a_reversal_with_a_date_outside_the_grant_year_is_still_refused() -> None:
    with pytest.raises(InvalidExpenditure) as refused:
        record().reverse(reason="x", booked_on=date(2026, 1, 10), today=date(2026, 1, 10), books=None)
    assert set(refused.value.errors) == {"booked_on"}


def test_a_year_closes_once_not_before_it_starts_and_only_by_the_ministry() -> None:
    books = closed()
    with pytest.raises(YearAlreadyClosed) as twice:
        Books.close(
            books=books,
            municipality_code=A,
            grant_year=2024,
            closed_on=date(2025, 7, 1),
            closed_by="ministry",
            final_account=False,
        )
    assert twice.value.errors == {"year": ["the grant year 2024 was already closed for GM0363 on 2025-06-30"]}
    with pytest.raises(InvalidExpenditure) as early:
        Books.close(
            books=None,
            municipality_code=A,
            grant_year=2024,
            closed_on=date(2023, 12, 31),
            closed_by="ministry",
            final_account=False,
        )
    assert early.value.errors == {"closed_on": ["a year cannot be closed before it starts (2024)"]}
    for not_the_ministry in ("municipality", "auditor"):  # auditors read only (issue 16)
        with pytest.raises(InvalidExpenditure) as who:
            Books.close(
                books=None,
                municipality_code=A,
                grant_year=2024,
                closed_on=date(2025, 1, 1),
                closed_by=not_the_ministry,
                final_account=False,
            )
        assert set(who.value.errors) == {"closed_by"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"category": "travel"}, "category"),
        ({"amount_cents": 0}, "amount_cents"),
        ({"amount_cents": 10**12 + 1}, "amount_cents"),
        ({"amount_cents": True}, "amount_cents"),
        ({"grant_year": 2018, "booked_on": date(2018, 3, 1)}, "grant_year"),
        ({"booked_on": date(2025, 1, 1)}, "booked_on"),
        ({"description": "   "}, "description"),
        ({"reference": "R\x00"}, "reference"),
        ({"reference": "R" * 101}, "reference"),
        ({"counterparty": {"id": "PRINT-1", "name": "n" * 201}}, "counterparty.name"),
        ({"category": "library_funding", "counterparty": {"id": "Bieb", "name": "Bieb"}}, "counterparty.id"),
    ],
)
def test_the_aggregate_refuses_what_the_rules_refuse_with_their_reasons(overrides: dict[str, Any], field: str) -> None:
    """One set of rules: what the aggregate refuses is exactly what the CSV import names."""
    with pytest.raises(InvalidExpenditure) as refused:
        record(**overrides)
    assert refused.value.errors == expenditure_errors({**VALID, **overrides})
    assert field in refused.value.errors


# -- grant years and mergers (issue 15) ------------------------------------------------------------


def test_a_year_without_an_award_is_refused_naming_the_year_unless_opened() -> None:
    with pytest.raises(GrantYearUnknown) as refused:
        record(grant=GrantYear(A, 2024, awarded=False, open_before_award=False))
    assert refused.value.field == "grant_year"
    assert "2024" in refused.value.message and A in refused.value.message
    assert record(grant=GrantYear(A, 2024, awarded=False, open_before_award=True)).grant_year == 2024


def test_a_merged_code_is_refused_from_the_effective_date_naming_the_successor() -> None:
    merged = awarded(merged_into="GM0344", merged_on=date(2024, 7, 1))
    assert record(grant=merged, booked_on=date(2024, 6, 30)).amount_cents == 1000  # before: its own books
    with pytest.raises(MunicipalityMerged) as refused:
        record(grant=merged, booked_on=date(2024, 7, 1))
    assert refused.value.field == "municipality_code"
    assert "GM0344" in refused.value.message and "2024-07-01" in refused.value.message


def test_the_grant_year_of_another_year_or_code_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        record(grant=awarded(2023))
    with pytest.raises(ValueError):
        record(grant=awarded(code="GM0344"))


@pytest.mark.parametrize("char", ["\u0000", "\u0007", "\u001b", "\u0085"])
def test_a_reversal_reason_with_a_control_character_is_refused_by_the_aggregate(char: str) -> None:
    """The issue 16 attack: NUL in a reason was stored and published, and the view's database refused
    it (dead letter: reversed in the store, counted in the view). The aggregate refuses it, so no
    caller (HTTP, CLI, a script) can skip the rule."""
    expenditure = record()
    with pytest.raises(InvalidExpenditure) as refused:
        expenditure.reverse(reason=f"typo{char}", booked_on=date(2024, 4, 1), today=TODAY, books=None)
    assert refused.value.field == "reason"
    assert not expenditure.reversed
    expenditure.reverse(reason="typo\nsee the invoice", booked_on=date(2024, 4, 1), today=TODAY, books=None)
    assert expenditure.reversed


def test_a_years_books_id_is_its_streams_however_often_asked() -> None:
    """books_id is remembered (every posting's guard asks it); a remembered id is still the stream's, and a
    year given as another type (True, 2024.0) names its own stream, as the text it makes does."""
    for code, year in [("GM0363", 2024), ("GM0363", 2025), ("GM0014", 2024), ("GM0363", 2024)]:
        assert books_id(code, year) == stream_uuid(f"books-{code}-{year}") == stream_uuid(books_stream(code, year))
    assert books_id("GM0363", True) == stream_uuid("books-GM0363-True") != books_id("GM0363", 1)  # type: ignore[arg-type]
    assert books_id("GM0363", 2024.0) == stream_uuid("books-GM0363-2024.0") != books_id("GM0363", 2024)  # type: ignore[arg-type]
