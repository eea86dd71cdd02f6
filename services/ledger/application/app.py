"""The ledger's eventsourcing Application: post, reverse, import and close, each idempotent under an
Idempotency-Key; loads and saves the small aggregates (one ``Expenditure`` per posting, one ``Books`` per
municipality and grant year), whose rules decide. What a posting's rules need from the grants topic
(the award of its year, the municipality's merger) it asks the read side's view (``grant_years``).

The key's claim, fingerprint and stored answer are the HTTP layer's (services/common/idempotency.py).
Here a key fixes the ids of what a command stores (``derived_id``), so a command run again with its
key (after a crash, or by a concurrent request) finds its own events and answers as the first time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, RecordConflictError, Recording

from services.common.config import EVENTS_DB_URL, MERGERS_REREAD_MS, VIEW_DB_URL, YEARS_OPEN_BEFORE_AWARD, parse_years
from services.common.group_commit import GroupCommit, SavesGivenEvents
from services.common.idempotency import derived_id
from services.common.retry import retry_on
from services.common.side_rows import SIDE_ROWS
from services.common.stream_guard import GUARDS, GuardBroken, Guards, require_guarding
from services.ledger.application.csv_import import ExpenditureTable, parse_expenditures
from services.ledger.domain.errors import (
    ConcurrentChange,
    ExpenditureNotFound,
    GrantYearUnknown,
    IdempotencyKeyReused,
    InvalidExpenditure,
    MunicipalityMerged,
    YearIsClosed,
)
from services.ledger.domain.grant_years import GrantYear
from services.ledger.domain.model import Books, Expenditure, books_id, check_open, expenditure_aggregate_id
from services.ledger.domain.sisa import SisaLine, sisa_line_id
from services.ledger.read_side import GrantYearsInView, RecordedEvents, grant_years_in_view, recorded_events_in

CONFLICTS = (IntegrityError, RecordConflictError)
"""What eventsourcing raises when another writer saved the same stream version first."""


def _today() -> date:
    return datetime.now(UTC).date()


def _expenditure_request(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "grant_year": data["grant_year"],
        "category": data["category"],
        "amount_cents": data["amount_cents"],
        "booked_on": data["booked_on"].isoformat(),
        "counterparty": {"id": data["counterparty"]["id"], "name": data["counterparty"]["name"]},
        "description": data["description"],
        "reference": data["reference"],
    }


def _same_expenditure(existing: Expenditure, request: dict[str, Any]) -> bool:
    return (
        _expenditure_request(
            {
                "grant_year": existing.grant_year,
                "category": existing.category,
                "amount_cents": existing.amount_cents,
                "booked_on": date.fromisoformat(existing.booked_on),
                "counterparty": existing.counterparty,
                "description": existing.description,
                "reference": existing.reference,
            }
        )
        == request
    )


def _recorded_answer(expenditure: Expenditure) -> dict[str, Any]:
    return {
        "expenditure_id": expenditure.expenditure_id,
        "event_id": expenditure.recorded_event_id,
        "stream_id": expenditure.stream_id,
        "municipality_code": expenditure.municipality_code,
        "grant_year": expenditure.grant_year,
    }


def _reused(key: str) -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        f"Idempotency-Key {key!r} was used before with a different request; use a new key",
        field="Idempotency-Key",
    )


def key_scope(municipality_code: str, subject: str | None) -> str:
    """Whose Idempotency-Keys a posting's ids derive from: one client's (token subject) of the
    municipality, so two clients of one municipality never answer each other's retries. A token
    whose subject is the bare code (every token before issue 16) keeps the ids it had, so a retry
    across the upgrade still finds its posting."""
    if subject is None or subject == municipality_code:
        return municipality_code
    return f"{municipality_code}/{subject}"


class LedgerApplication(SavesGivenEvents, Application[UUID]):
    name = "ledger"
    today: Callable[[], date] = staticmethod(_today)
    """Today's date (UTC); a test may set another."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self.postings = GroupCommit(self)
        """Saves postings, the hot path, of concurrent requests together (services/common/group_commit.py)."""
        require_guarding(self.recorder)  # a closed year is decided in the save's transaction (_while_open)
        self._grant_years: GrantYearsInView | None = None
        self._recorded_events: RecordedEvents | None = None
        self._closed_books: dict[tuple[str, int], Books] = {}

    @property
    def grant_years(self) -> GrantYearsInView:
        """The view's awards and mergers (``Settings.eventsourcing_env`` passes its URL and the opened
        years); opened at the first posting, so an application that only reads needs no view."""
        if self._grant_years is None:
            url = self.env.get(VIEW_DB_URL)
            if not url:
                raise RuntimeError(f"the ledger's write side needs {VIEW_DB_URL} to know the awards and mergers")
            opened = parse_years(YEARS_OPEN_BEFORE_AWARD, self.env.get(YEARS_OPEN_BEFORE_AWARD))
            # Unset (an application built without Settings): read at every posting, as exact as the view.
            reread_ms = int(self.env.get(MERGERS_REREAD_MS) or 0)
            self._grant_years = grant_years_in_view(url, opened, reread_ms)
        return self._grant_years

    def grant_year(self, municipality_code: str, year: int) -> GrantYear:
        return self.grant_years.grant_year(municipality_code, year)

    @property
    def recorded_events(self) -> RecordedEvents:
        """The ids of the events stored here and their municipality, for read-your-writes
        (``Settings.eventsourcing_env`` passes the URL of the event store's database)."""
        if self._recorded_events is None:
            url = self.env.get(EVENTS_DB_URL)
            if not url:
                raise RuntimeError(f"the ledger needs {EVENTS_DB_URL} to note the ids of the events it records")
            self._recorded_events = recorded_events_in(url)
        return self._recorded_events

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        """Notes each event's id and municipality in the store's own transaction (``side_rows``), so that
        a read may wait for it (``includes_event_id``); a read waits for no id that is not noted here."""
        rows = self.recorded_events.rows(
            (str(event_id), getattr(event, "partition_key", None))
            for event in processing_event.events
            if (event_id := getattr(event, "event_id", None))
        )
        processing_event.saved_kwargs[SIDE_ROWS] = rows
        recordings = super()._record(processing_event)
        self.recorded_events.remember(rows)  # committed: a read after the posting need not ask the table
        return recordings

    def close(self) -> None:
        for opened in (self._grant_years, self._recorded_events):
            if opened is not None:
                opened.engine.dispose()
        super().close()

    # -- loading -------------------------------------------------------------------------------

    def find_expenditure(self, expenditure_id: UUID | str) -> Expenditure | None:
        try:
            found: Expenditure = self.repository.get(expenditure_aggregate_id(expenditure_id))
        except AggregateNotFoundError:
            return None
        return found

    def find_books(self, municipality_code: str, year: int) -> Books | None:
        return self._read_books(municipality_code, year)

    def _read_books(self, municipality_code: str, year: int) -> Books | None:
        try:
            found: Books = self.repository.get(books_id(municipality_code, year))
        except AggregateNotFoundError:
            return None
        self._closed_books[(municipality_code, year)] = found  # a close is final
        return found

    def books_seen_closed(self, municipality_code: str, year: int) -> Books | None:
        """The books of a year this process has seen closed, else None (without asking the store).

        A posting does not read the books first (issue 17: a read per posting, a round trip on
        PostgreSQL): its save's guard refuses it in the store's transaction if the year is closed
        (``_while_open``), which is the decision that counts anyway. A year seen closed is refused
        before the save, so postings into it do not break their batch's commit again and again."""
        return self._closed_books.get((municipality_code, year))

    # -- commands ------------------------------------------------------------------------------

    @staticmethod
    def _while_open(*expenditures: Expenditure) -> Guards:
        """The guards of saving ``expenditures``: each year's books stream still empty (the year open).

        The command checked the books before deciding; this is the same rule again in the event
        store's write transaction, after its lock (services/common/stream_guard.py), so a close that
        committed in between refuses the save instead of being overtaken by it."""
        return {e.id: frozenset({e.year_books_id}) for e in expenditures}

    def _refuse_closed(self, municipality_code: str, year: int) -> YearIsClosed:
        """The refusal of a save whose year closed after the command's check (its guard broke): the
        books as the store holds them now (the guard saw them)."""
        try:
            check_open(self._read_books(municipality_code, year), municipality_code, year)
        except YearIsClosed as closed:
            return closed
        raise RuntimeError(f"a save's guard saw the books of {municipality_code} {year}, which are not found")

    def record_expenditure(
        self, municipality_code: str, data: dict[str, Any], idempotency_key: str | None = None,
        subject: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """``subject``: the caller's token subject; its keys are its own (``key_scope``)."""
        request = _expenditure_request(data)

        def saved_before(expenditure_id: UUID) -> tuple[int, dict[str, Any]] | None:
            """The answer of this key's expenditure if it is stored already (by the first request or
            a concurrent retry); None if it is not; 409 if it was stored with another body."""
            if idempotency_key is None:
                return None
            existing = self.find_expenditure(expenditure_id)
            if existing is None:
                return None
            if not _same_expenditure(existing, request):
                raise _reused(idempotency_key)
            return 201, _recorded_answer(existing)

        # The key table is not used here: the stream id is derived from the key, so the event store's
        # own uniqueness is the key's record, written in the same commit as the event. A retry finds
        # the expenditure by the save's conflict and answers from it. A new posting costs one commit and
        # no read: whether its year is closed is decided by the save's guard (``books_seen_closed``).
        if idempotency_key is None:
            expenditure_id = uuid4()
        else:
            expenditure_id = derived_id(key_scope(municipality_code, subject), "expenditure", idempotency_key)
        books = self.books_seen_closed(municipality_code, data["grant_year"])
        grant = self.grant_year(municipality_code, data["grant_year"])
        try:
            try:
                expenditure = self._new_expenditure(municipality_code, expenditure_id, data, books, grant)
            except (GrantYearUnknown, MunicipalityMerged):
                if books is None:  # a closed year is refused as closed first, as the rules order it
                    self._new_expenditure(
                        municipality_code, expenditure_id, data, self.find_books(municipality_code, data["grant_year"]),
                        grant,
                    )
                raise
        except (YearIsClosed, GrantYearUnknown, MunicipalityMerged):
            if (answer := saved_before(expenditure_id)) is not None:
                return answer  # saved before the year was closed (or the merger known): answer as then
            raise
        try:
            self.postings.save(expenditure, self._while_open(expenditure))
        except (*CONFLICTS, GuardBroken) as error:
            if (answer := saved_before(expenditure_id)) is not None:
                return answer
            if isinstance(error, GuardBroken):  # the year closed after the check above: refused as then
                raise self._refuse_closed(municipality_code, data["grant_year"]) from None
            raise
        return 201, _recorded_answer(expenditure)

    def _new_expenditure(
        self, municipality_code: str, expenditure_id: UUID, data: dict[str, Any], books: Books | None, grant: GrantYear
    ) -> Expenditure:
        return Expenditure.record(
            expenditure_id=expenditure_id,
            municipality_code=municipality_code,
            grant_year=data["grant_year"],
            category=data["category"],
            amount_cents=data["amount_cents"],
            booked_on=data["booked_on"],
            counterparty=data["counterparty"],
            description=data["description"],
            reference=data["reference"],
            books=books,
            grant=grant,
        )

    def reverse_expenditure(
        self,
        municipality_code: str,
        expenditure_id: UUID,
        *,
        reason: str,
        booked_on: date | None = None,
        idempotency_key: str | None = None,
        subject: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """An expenditure is reversed once: a second reversal is 409, with a new key or none. Only a re-run
        of the same request (its key, reason and day) answers 201 again, known by the reversal's event id,
        which derives from the key: so it holds after a crash whatever became of the key's claim."""

        def answer(expenditure: Expenditure) -> dict[str, Any]:
            return {
                "expenditure_id": expenditure.expenditure_id,
                "event_id": expenditure.reversal_event_id,
                "reverses_event_id": expenditure.recorded_event_id,
            }

        own_event_id = (
            None
            if idempotency_key is None
            else str(derived_id(key_scope(municipality_code, subject), "reversal", idempotency_key, expenditure_id))
        )

        @retry_on(ConcurrentChange)  # someone else changed the stream: reload and decide again
        def run() -> tuple[int, dict[str, Any]]:
            expenditure = self.find_expenditure(expenditure_id)
            if expenditure is None or expenditure.municipality_code != municipality_code:
                raise ExpenditureNotFound(
                    f"no expenditure {expenditure_id} in the books of {municipality_code}", field="expenditure_id"
                )
            if (
                own_event_id is not None
                and expenditure.reversal_event_id == own_event_id
                and expenditure.reversal_reason == reason
                and (booked_on is None or expenditure.reversal_booked_on == booked_on.isoformat())
            ):
                return 201, answer(expenditure)  # saved by an earlier run with this key (e.g. before a crash)
            books = self.find_books(municipality_code, expenditure.grant_year)
            expenditure.reverse(
                reason=reason, booked_on=booked_on, today=self.today(), books=books, event_id=own_event_id
            )
            try:
                self.save(expenditure, **{GUARDS: self._while_open(expenditure)})
            except GuardBroken:  # the year closed after the check above
                raise self._refuse_closed(municipality_code, expenditure.grant_year) from None
            except CONFLICTS:
                raise ConcurrentChange("the expenditure kept changing while reversing; try again") from None
            return 201, answer(expenditure)

        return run()

    def close_year(
        self,
        municipality_code: str,
        year: int,
        *,
        closed_by: str,
        final_account: bool,
        closed_on: date | None = None,
        idempotency_key: str | None = None,
        subject: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """A year closes once: closing it again is 409, with a new key or none; only a re-run of the same
        request answers 201 again, known by the closing's event id, derived from the key (as a reversal's)."""
        on = closed_on or self.today()
        Books.check_closing_date(year, on)
        own_event_id = (
            None
            if idempotency_key is None
            else str(derived_id(key_scope(municipality_code, subject), "close", idempotency_key, year))
        )

        def answer(books: Books) -> dict[str, Any]:
            return {
                "municipality_code": municipality_code,
                "grant_year": year,
                "event_id": books.closed_event_id,
                "closed_on": books.closed_on,
                "closed_by": books.closed_by,
                "final_account": books.final_account,
            }

        @retry_on(ConcurrentChange)  # a concurrent close won: decide again on what it stored
        def run() -> tuple[int, dict[str, Any]]:
            existing = self.find_books(municipality_code, year)
            if (
                existing is not None
                and own_event_id is not None
                and existing.closed_event_id == own_event_id
                and existing.final_account == final_account
                and (closed_on is None or existing.closed_on == closed_on.isoformat())
            ):
                return 201, answer(existing)  # saved by an earlier run with this key (e.g. before a crash)
            books = Books.close(
                books=existing,
                municipality_code=municipality_code,
                grant_year=year,
                closed_on=on,
                closed_by=closed_by,
                final_account=final_account,
                event_id=own_event_id,
            )
            try:
                self.save(books)
            except CONFLICTS:
                raise ConcurrentChange(f"the grant year {year} was closed concurrently; try again") from None
            return 201, answer(books)

        return run()

    def find_sisa_line(self, municipality_code: str, accounts_year: int, grant_year: int) -> SisaLine | None:
        try:
            found: SisaLine = self.repository.get(sisa_line_id(municipality_code, accounts_year, grant_year))
        except AggregateNotFoundError:
            return None
        return found

    def declare_sisa_line(
        self,
        municipality_code: str,
        accounts_year: int,
        grant_year: int,
        *,
        final_account: bool,
        declared_by: str,
        declared_on: date | None = None,
        reason: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """The eindverantwoording of one SiSa line (``domain/sisa.py``); a retry of the same declaration
        answers as the first (the stream id is the line's, so a key's re-run finds it)."""

        def answer(line: SisaLine) -> dict[str, Any]:
            return {
                "municipality_code": line.municipality_code,
                "accounts_year": line.accounts_year,
                "grant_year": line.grant_year,
                "final_account": line.final_account,
                "declared_on": line.declared_on,
                "declared_by": line.declared_by,
                "reason": line.reason,
                "event_id": line.declared_event_id,
            }

        @retry_on(ConcurrentChange)  # a concurrent declaration won: decide again on what it stored
        def run() -> tuple[int, dict[str, Any]]:
            existing = self.find_sisa_line(municipality_code, accounts_year, grant_year)
            if existing is not None and existing.same_as(final_account, declared_by):
                return 201, answer(existing)
            line = SisaLine.declare(
                existing=existing,
                municipality_code=municipality_code,
                accounts_year=accounts_year,
                grant_year=grant_year,
                final_account=final_account,
                declared_on=declared_on or self.today(),
                declared_by=declared_by,
                reason=reason,
                today=self.today(),
            )
            try:
                self.save(line)
            except CONFLICTS:
                raise ConcurrentChange("the SiSa line was declared concurrently; try again") from None
            return 201, answer(line)

        return run()

    def import_expenditures(
        self, municipality_code: str, source: str | ExpenditureTable, idempotency_key: str | None = None,
        subject: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """``source``: a CSV's text, or the table of a spreadsheet (the dashboard's XLSX upload)."""
        rows, errors = parse_expenditures(source)
        if errors:
            raise InvalidExpenditure(
                f"the import was refused as a whole: {len(errors)} problem(s); nothing was recorded", errors=errors
            )

        def answer(items: list[tuple[int, Expenditure]]) -> dict[str, Any]:
            return {
                "count": len(items),
                "expenditures": [
                    {"line": line, "expenditure_id": e.expenditure_id, "event_id": e.recorded_event_id}
                    for line, e in items
                ],
            }

        @retry_on(ConcurrentChange)  # a run with the same key saved first: answer from its events
        def run() -> tuple[int, dict[str, Any]]:
            ids = [
                derived_id(key_scope(municipality_code, subject), "import", idempotency_key, line)
                if idempotency_key else uuid4()
                for line, _row in rows
            ]
            if idempotency_key is not None:
                found = [self.find_expenditure(i) for i in ids]
                if any(e is not None for e in found):  # saved before a crash (one save: all or nothing)
                    pairs: list[tuple[int, Expenditure]] = []
                    for (line, row), existing in zip(rows, found, strict=True):
                        if existing is None or not _same_expenditure(existing, _expenditure_request(row)):
                            raise _reused(idempotency_key)
                        pairs.append((line, existing))
                    return 201, answer(pairs)
            years = {row["grant_year"] for _line, row in rows}
            books = {year: self.find_books(municipality_code, year) for year in years}
            grants = {year: self.grant_year(municipality_code, year) for year in years}
            items: list[tuple[int, Expenditure]] = []
            closed_errors: dict[str, list[str]] = {}
            grant_errors: dict[str, list[str]] = {}
            for (line, row), i in zip(rows, ids, strict=True):
                year = row["grant_year"]
                try:
                    items.append((line, self._new_expenditure(municipality_code, i, row, books[year], grants[year])))
                except YearIsClosed as error:
                    closed_errors[f"line {line}.grant_year"] = [error.message]
                except (GrantYearUnknown, MunicipalityMerged) as error:
                    grant_errors[f"line {line}.{error.field}"] = [error.message]
            if grant_errors:  # 422 (with the closed rows named too): the file needs changing, not the year
                raise InvalidExpenditure(
                    "the import was refused as a whole: rows post into a grant year the ledger has no award of, "
                    "or under a merged municipality's code; nothing was recorded",
                    errors={**closed_errors, **grant_errors},
                )
            if closed_errors:
                raise YearIsClosed(
                    "the import was refused as a whole: rows post into a closed year; nothing was recorded",
                    errors=closed_errors,
                )
            expenditures = [e for _line, e in items]
            try:  # one transaction: all rows or none
                self.save(*expenditures, **{GUARDS: self._while_open(*expenditures)})
            except (*CONFLICTS, GuardBroken):  # saved concurrently, or a year closed after the check above:
                raise ConcurrentChange("the import was saved concurrently; try again") from None  # decide again
            return 201, answer(items)

        return run()
