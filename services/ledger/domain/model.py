"""Aggregates of the ledger: one small stream per expenditure, one per (municipality, year) closing.

Nothing grows with history: posting the n-th expenditure loads no earlier expenditure, and the
books of a year exist only once the year is closed (``books-<code>-<year>``), so checking for a
closed year is one lookup of a stream that has one event.

Invariants (each enforced here, whatever the caller):
- an expenditure keeps the rules of its input (``rules.expenditure_errors``);
- a closed year refuses postings, reversals and imports: ``Expenditure.record`` and
  ``Expenditure.reverse`` take the year's ``Books`` as loaded by the caller (None while it is open);
- a posting needs an award of its grant year and is refused under a merged code from the merger's
  effective date: ``Expenditure.record`` takes the ``GrantYear`` (``grant_years.py``);
- a year closes once, not before it starts, and only by the ministry (auditors read only);
- an expenditure is reversed at most once, within its grant year, not before its own booking date;
  a reversal given no booking day books today if that is such a day, else on the expenditure's own
  booking date (``Expenditure.reversal_day``).
"""

from __future__ import annotations

import functools
from datetime import date
from typing import TYPE_CHECKING, Any
from uuid import UUID

from contracts.text import text_problem
from services.common.domain.chained import ChainedAggregate, stream_uuid
from services.ledger.domain.errors import (
    AlreadyReversed,
    InvalidExpenditure,
    YearAlreadyClosed,
    YearIsClosed,
)
from services.ledger.domain.grant_years import GrantYear, check_grant_year
from services.ledger.domain.rules import expenditure_errors, in_year_reason

PRODUCER = "ledger"


def expenditure_stream(expenditure_id: UUID | str) -> str:
    return f"expenditure-{expenditure_id}"


def books_stream(municipality_code: str, year: int) -> str:
    return f"books-{municipality_code}-{year}"


@functools.lru_cache(maxsize=8192, typed=True)  # typed: True and 1.0 name other streams than 1 ("True", "1.0")
def books_id(municipality_code: str, year: int) -> UUID:
    """Asked at every posting (its save's guard): a few hundred municipalities by a few years, so remembered."""
    return stream_uuid(books_stream(municipality_code, year))


def expenditure_aggregate_id(expenditure_id: UUID | str) -> UUID:
    return stream_uuid(expenditure_stream(expenditure_id))


def check_in_year(value: date, year: int, field: str) -> None:
    if reason := in_year_reason(value, year):
        raise InvalidExpenditure(reason, field=field)


def check_open(books: Books | None, municipality_code: str, grant_year: int) -> None:
    """Refuses a posting, reversal or import row into a closed year (409, field ``grant_year``)."""
    if books is None:
        return
    if (books.municipality_code, books.grant_year) != (municipality_code, grant_year):
        # A caller that loads the wrong books would let a closed year through: fail loudly instead.
        raise ValueError(
            f"the books of {books.municipality_code} {books.grant_year} passed for {municipality_code} {grant_year}"
        )
    raise YearIsClosed(
        f"the grant year {grant_year} is closed for {municipality_code} (closed on {books.closed_on} "
        f"by the {books.closed_by}); postings and reversals into a closed year are refused",
        field="grant_year",
    )


class Expenditure(ChainedAggregate):
    TOPIC = "ido:Expenditure"
    PRODUCER = PRODUCER

    if TYPE_CHECKING:  # set by the events; not dataclass fields (see ChainedAggregate)
        expenditure_id: str
        municipality_code: str
        grant_year: int
        category: str
        amount_cents: int
        booked_on: str
        counterparty: dict[str, str]
        description: str
        reference: str
        recorded_event_id: str
        reversal_event_id: str | None
        reversal_reason: str | None
        reversal_booked_on: str | None

    class Recorded(ChainedAggregate.Created):
        EVENT_TYPE = "ExpenditureRecorded"
        expenditure_id: str
        municipality_code: str
        grant_year: int
        category: str
        amount_cents: int
        booked_on: str
        counterparty: dict[str, str]
        description: str
        reference: str

        def apply(self, aggregate: Any) -> None:
            for name in (
                "expenditure_id",
                "municipality_code",
                "grant_year",
                "category",
                "amount_cents",
                "booked_on",
                "counterparty",
                "description",
                "reference",
            ):
                setattr(aggregate, name, getattr(self, name))
            aggregate.recorded_event_id = self.event_id
            aggregate.reversal_event_id = None
            aggregate.reversal_reason = None
            aggregate.reversal_booked_on = None

    class Reversed(ChainedAggregate.Event):
        EVENT_TYPE = "ExpenditureReversed"
        expenditure_id: str
        municipality_code: str
        grant_year: int
        reverses_event_id: str
        amount_cents: int
        category: str
        booked_on: str
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.reversal_event_id = self.event_id
            aggregate.reversal_reason = self.reason
            aggregate.reversal_booked_on = self.booked_on

    @classmethod
    def record(
        cls,
        *,
        expenditure_id: UUID,
        municipality_code: str,
        grant_year: int,
        category: str,
        amount_cents: int,
        booked_on: date,
        counterparty: dict[str, str],
        description: str,
        reference: str,
        books: Books | None,
        grant: GrantYear,
    ) -> Expenditure:
        """``books``: the books of (municipality_code, grant_year) as loaded now, None while open;
        ``grant``: what the grants topic says of that grant year (award, merger), as loaded now."""
        errors = expenditure_errors(
            {
                "grant_year": grant_year,
                "category": category,
                "amount_cents": amount_cents,
                "booked_on": booked_on,
                "counterparty": counterparty,
                "description": description,
                "reference": reference,
            }
        )
        if errors:
            raise InvalidExpenditure("the expenditure has invalid fields", errors=errors)
        check_open(books, municipality_code, grant_year)
        check_grant_year(grant, municipality_code, grant_year, booked_on)
        return cls._start(
            cls.Recorded,
            stream_id=expenditure_stream(expenditure_id),
            partition_key=municipality_code,
            expenditure_id=str(expenditure_id),
            municipality_code=municipality_code,
            grant_year=grant_year,
            category=category,
            amount_cents=amount_cents,
            booked_on=booked_on.isoformat(),
            counterparty={"id": counterparty["id"], "name": counterparty["name"]},
            description=description,
            reference=reference,
        )

    @property
    def year_books_id(self) -> UUID:
        """The books stream of this expenditure's year: once it starts (the close), the year refuses
        this expenditure's events, so a save holds only while it is empty (``LedgerApplication``)."""
        return books_id(self.municipality_code, self.grant_year)

    @property
    def reversed(self) -> bool:
        return self.reversal_event_id is not None

    def reversal_day(self, today: date) -> date:
        """The booking day of a reversal that names none: today if a reversal may book on it (within
        the grant year, not before the expenditure's own booking date), else that booking date.

        Today alone is no default: reversing a 2024 invoice in 2026 would book in 2026 and be
        refused for leaving the grant year, although the caller named no date at all. The
        expenditure's own date is the day the reversal's cancelled amount belongs to.
        """
        own = date.fromisoformat(self.booked_on)
        if in_year_reason(today, self.grant_year) is None and today >= own:
            return today
        return own

    def reverse(
        self, *, reason: str, booked_on: date | None, today: date, books: Books | None, event_id: str | None = None
    ) -> None:
        """``booked_on``: None books on ``reversal_day(today)``. ``books``: the books of this
        expenditure's year as loaded now, None while open. ``event_id``: the reversal's own, derived
        from its Idempotency-Key, so a re-run of the same request knows it from another reversal."""
        check_open(books, self.municipality_code, self.grant_year)
        if problem := text_problem(reason, multi_line=True):
            raise InvalidExpenditure(problem, field="reason")
        if self.reversed:
            raise AlreadyReversed(
                f"expenditure {self.expenditure_id} was already reversed (event {self.reversal_event_id}); "
                "an expenditure is reversed once",
                field="expenditure_id",
            )
        if booked_on is None:
            booked_on = self.reversal_day(today)
        check_in_year(booked_on, self.grant_year, "booked_on")
        if booked_on < date.fromisoformat(self.booked_on):
            raise InvalidExpenditure(
                f"must not be before the expenditure's own booking date {self.booked_on}", field="booked_on"
            )
        self._record(
            self.Reversed,
            expenditure_id=self.expenditure_id,
            municipality_code=self.municipality_code,
            grant_year=self.grant_year,
            reverses_event_id=self.recorded_event_id,
            amount_cents=self.amount_cents,
            category=self.category,
            booked_on=booked_on.isoformat(),
            reason=reason,
            event_id=event_id,
        )


class Books(ChainedAggregate):
    """A municipality's books of one grant year; the stream starts when the year is closed."""

    TOPIC = "ido:Books"
    PRODUCER = PRODUCER

    if TYPE_CHECKING:
        municipality_code: str
        grant_year: int
        closed_on: str
        closed_by: str
        final_account: bool
        closed_event_id: str

    class Closed(ChainedAggregate.Created):
        EVENT_TYPE = "YearClosed"
        municipality_code: str
        grant_year: int
        closed_on: str
        closed_by: str
        final_account: bool

        def apply(self, aggregate: Any) -> None:
            for name in ("municipality_code", "grant_year", "closed_on", "closed_by", "final_account"):
                setattr(aggregate, name, getattr(self, name))
            aggregate.closed_event_id = self.event_id

    @staticmethod
    def check_closing_date(grant_year: int, closed_on: date) -> None:
        if closed_on.year < grant_year:
            raise InvalidExpenditure(f"a year cannot be closed before it starts ({grant_year})", field="closed_on")

    def refuse_closing_again(self) -> YearAlreadyClosed:
        return YearAlreadyClosed(
            f"the grant year {self.grant_year} was already closed for {self.municipality_code} on {self.closed_on}",
            field="year",
        )

    @classmethod
    def close(
        cls,
        *,
        books: Books | None,
        municipality_code: str,
        grant_year: int,
        closed_on: date,
        closed_by: str,
        final_account: bool,
        event_id: str | None = None,
    ) -> Books:
        """``books``: the year's books as loaded now (None while open); a year closes once. ``event_id``: the
        closing's own, derived from its Idempotency-Key, so a re-run of the same request knows it."""
        if books is not None:
            raise books.refuse_closing_again()
        cls.check_closing_date(grant_year, closed_on)
        if closed_by not in ("ministry",):
            raise InvalidExpenditure("only the ministry closes a year", field="closed_by")
        return cls._start(
            cls.Closed,
            stream_id=books_stream(municipality_code, grant_year),
            partition_key=municipality_code,
            municipality_code=municipality_code,
            grant_year=grant_year,
            closed_on=closed_on.isoformat(),
            closed_by=closed_by,
            final_account=final_account,
            event_id=event_id,
        )
