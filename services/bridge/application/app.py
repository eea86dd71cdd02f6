"""Commands and queries of the bridging subsidy.

Every command loads what it needs, lets the aggregates decide, and stores all resulting events with
one ``self.save(...)`` call: one transaction, all or nothing. A concurrent change of any of the saved
streams makes the save fail (optimistic concurrency) and the command answers 409, changing nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from services.bridge.domain.errors import (
    BridgeConflict,
    BridgeInvalidInput,
    BridgeNotFound,
    BridgeRuleBroken,
    ConcurrentChange,
)
from services.bridge.domain.frame import DEFAULT_FRAME_CENTS, FRAME_STREAM, BridgeFrame
from services.bridge.domain.library import Library, check_library_id, library_stream
from services.bridge.domain.rounding import DEFAULT_RATE, compute_grants, format_rate
from services.common.domain.chained import ChainedAggregate, envelope_of, stream_uuid
from services.common.retry import retry_on

DEFAULT_ACCOUNT_PERIOD_START = date(2019, 1, 1)
DEFAULT_SPENDING_DEADLINE = date(2023, 5, 1)
DEFAULT_ACCOUNT_DEADLINE = date(2023, 9, 1)
_PAGE = 500
LIBRARY_REGISTERED_TOPIC = "ido:LibraryRegistered"


retried = retry_on(ConcurrentChange)


def _utc_today() -> date:
    return datetime.now(UTC).date()


class BridgeApplication(Application):
    name = "bridge"

    today: Callable[[], date] = staticmethod(_utc_today)
    """The current UTC date; tests may replace it."""

    # -- storing ----------------------------------------------------------------------------------

    def _store(self, *aggregates: ChainedAggregate) -> None:
        try:
            self.save(*aggregates)
        except IntegrityError:
            raise ConcurrentChange(
                "someone else changed these records meanwhile; nothing was stored, read again and retry"
            ) from None

    def _not_in_future(self, day: date, field: str) -> None:
        if day > self.today():
            raise BridgeInvalidInput(f"{day.isoformat()} is in the future", field=field)

    # -- loading ----------------------------------------------------------------------------------

    def _frame(self) -> BridgeFrame:
        try:
            frame: BridgeFrame = self.repository.get(stream_uuid(FRAME_STREAM))
        except AggregateNotFoundError:
            raise BridgeNotFound("the bridging frame has not been set yet", field="frame") from None
        return frame

    def _library(self, library_id: str, field: str = "library_id") -> Library:
        check_library_id(library_id, field)
        try:
            library: Library = self.repository.get(stream_uuid(library_stream(library_id)))
        except AggregateNotFoundError:
            raise BridgeNotFound(f"no library {library_id} is registered", field=field) from None
        return library

    def _library_ids(self) -> Iterator[UUID]:
        """Aggregate ids of all registered libraries, in order of registration (the store is the index)."""
        start = 0
        while True:
            page = self.recorder.select_notifications(
                start=start, limit=_PAGE, topics=(LIBRARY_REGISTERED_TOPIC,), inclusive_of_start=False
            )
            for notification in page:
                originator_id = notification.originator_id
                yield originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
            if len(page) < _PAGE:
                return
            start = page[-1].id

    def _libraries(self) -> list[Library]:
        return [self.repository.get(library_id) for library_id in self._library_ids()]

    # -- commands: frame --------------------------------------------------------------------------

    @retried
    def set_frame(
        self,
        *,
        frame_cents: int = DEFAULT_FRAME_CENTS,
        rate: Decimal | str = DEFAULT_RATE,
        account_period_start: date = DEFAULT_ACCOUNT_PERIOD_START,
        spending_deadline: date = DEFAULT_SPENDING_DEADLINE,
        account_deadline: date = DEFAULT_ACCOUNT_DEADLINE,
    ) -> dict[str, Any]:
        try:
            self._frame()
        except BridgeNotFound:
            pass
        else:
            raise BridgeConflict("the frame is already set; amend it instead", field="frame")
        frame = BridgeFrame.set(
            frame_cents=frame_cents,
            rate=rate,
            account_period_start=account_period_start,
            spending_deadline=spending_deadline,
            account_deadline=account_deadline,
        )
        self._store(frame)
        return frame.snapshot()

    @retried
    def amend_frame(self, *, reason: str, **changes: Any) -> dict[str, Any]:
        frame = self._frame()
        frame.amend(reason=reason, **changes)
        self._store(frame)
        return frame.snapshot()

    # -- commands: the library register -----------------------------------------------------------

    def register_library(
        self, *, library_id: str, name: str, service_area: Iterable[Mapping[str, Any]]
    ) -> dict[str, Any]:
        return self.register_libraries([{"library_id": library_id, "name": name, "service_area": service_area}])[0]

    @retried
    def register_libraries(self, entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Registers several libraries in one transaction: all of them, or none."""
        libraries: list[Library] = []
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            library_id = check_library_id(entry["library_id"])
            if library_id in seen:
                raise BridgeConflict(f"{library_id} appears twice", field=f"libraries.{index}.library_id")
            seen.add(library_id)
            try:
                self._library(library_id)
            except BridgeNotFound:
                pass
            else:
                raise BridgeConflict(f"{library_id} is already registered", field="library_id")
            libraries.append(
                Library.register(library_id=library_id, name=entry["name"], service_area=entry["service_area"])
            )
        self._store(*libraries)
        return [library.snapshot() for library in libraries]

    @retried
    def change_service_area(
        self, library_id: str, *, service_area: Iterable[Mapping[str, Any]], reason: str
    ) -> dict[str, Any]:
        library = self._library(library_id)
        library.change_service_area(service_area, reason=reason)
        self._store(library)
        return library.snapshot()

    # -- commands: grants -------------------------------------------------------------------------

    @retried
    def compute_grants(self) -> dict[str, Any]:
        """Computes every registered library's grant (rule: ``services.bridge.domain.rounding``).

        One transaction stores the frame's new committed total and each library's grant. The whole
        batch is refused when its total exceeds the frame, or when any library's grant would drop
        below what it was already paid, or when any library has already submitted its account.
        """
        frame = self._frame()
        libraries = self._libraries()
        if not libraries:
            raise BridgeRuleBroken("no library is registered; there is nothing to compute", field="libraries")
        total, grants = compute_grants(frame.rate, {library.library_id: library.inhabitants for library in libraries})
        batch_id = f"batch-{uuid.uuid4()}"
        frame.commit(total, batch_id=batch_id)
        problems: dict[str, list[str]] = {}
        for library in libraries:
            try:
                library.set_computed_grant(grants[library.library_id], batch_id=batch_id, rate=frame.rate)
            except BridgeRuleBroken as error:
                problems.setdefault(f"libraries.{library.library_id}", []).append(error.message)
        if problems:
            raise BridgeRuleBroken("the batch is refused: some grants cannot change", errors=problems)
        self._store(frame, *libraries)
        return {
            "batch_id": batch_id,
            "rate_cents_per_inhabitant": format_rate(frame.rate),
            "inhabitants": sum(library.inhabitants for library in libraries),
            "total_cents": total,
            "frame_cents": frame.frame_cents,
            "grants": [
                {
                    "library_id": library.library_id,
                    "inhabitants": library.inhabitants,
                    "amount_cents": library.grant_cents,
                    "event_id": library.grant_event_id,
                }
                for library in libraries
            ],
        }

    @retried
    def set_grant(
        self, library_id: str, *, amount_cents: int, reason: str, corrects_event_id: str | None = None
    ) -> dict[str, Any]:
        """Enters (no grant yet) or corrects (``corrects_event_id`` = the current grant's event) one grant."""
        frame = self._frame()
        library = self._library(library_id)
        previous = library.grant_cents or 0
        library.set_single_grant(amount_cents, reason=reason, corrects_event_id=corrects_event_id)
        frame.commit(frame.committed_cents - previous + amount_cents, library_id=library.library_id)
        self._store(frame, library)
        return library.snapshot()

    # -- commands: payments and accounts ----------------------------------------------------------

    @retried
    def record_payment(self, library_id: str, *, amount_cents: int, paid_on: date) -> dict[str, Any]:
        self._not_in_future(paid_on, "paid_on")
        library = self._library(library_id)
        library.pay(amount_cents, paid_on=paid_on)
        self._store(library)
        return library.snapshot()

    @retried
    def pay_batch(
        self, *, paid_on: date, payments: Sequence[Mapping[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Pays several libraries in one transaction (all or none).

        Without ``payments`` every library with an outstanding grant is paid that outstanding amount.
        """
        self._not_in_future(paid_on, "paid_on")
        batch_id = f"payments-{uuid.uuid4()}"
        libraries: dict[str, Library] = {}
        wanted: list[tuple[Library, int, str]] = []
        if payments is None:
            for library in self._libraries():
                outstanding = (library.grant_cents or 0) - library.paid_cents
                if outstanding > 0 and library.account is None:
                    libraries[library.library_id] = library
                    wanted.append((library, outstanding, f"payments.{library.library_id}"))
        else:
            for index, payment in enumerate(payments):
                library_id = payment["library_id"]
                if library_id not in libraries:
                    libraries[library_id] = self._library(library_id, field=f"payments.{index}.library_id")
                wanted.append((libraries[library_id], payment["amount_cents"], f"payments.{index}"))
        if not wanted:
            raise BridgeRuleBroken("there is nothing to pay", field="payments")
        problems: dict[str, list[str]] = {}
        for library, amount, field in wanted:
            try:
                library.pay(amount, paid_on=paid_on, payment_batch_id=batch_id)
            except BridgeRuleBroken as error:
                problems.setdefault(f"{field}.amount_cents", []).append(error.message)
        if problems:
            raise BridgeRuleBroken("the payment batch is refused", errors=problems)
        self._store(*libraries.values())
        return {
            "payment_batch_id": batch_id,
            "paid_on": paid_on,
            "total_cents": sum(amount for _, amount, _ in wanted),
            "payments": [{"library_id": lib.library_id, "amount_cents": amount} for lib, amount, _ in wanted],
        }

    @retried
    def submit_account(self, library_id: str, *, spent_cents: int, submitted_on: date) -> dict[str, Any]:
        """Records the final account; the unspent part of what was paid is reclaimed in the same transaction."""
        self._not_in_future(submitted_on, "submitted_on")
        frame = self._frame()
        library = self._library(library_id)
        library.submit_account(spent_cents=spent_cents, submitted_on=submitted_on, frame=frame, issued_on=self.today())
        self._store(library)
        return library.snapshot()

    # -- queries ----------------------------------------------------------------------------------

    def frame(self) -> dict[str, Any]:
        return self._frame().snapshot()

    def overview(self) -> dict[str, Any]:
        """The frame with totals over all libraries."""
        frame = self._frame().snapshot()
        libraries = self._libraries()
        accounts = [library.account for library in libraries if library.account is not None]
        frame.update(
            libraries=len(libraries),
            inhabitants=sum(library.inhabitants for library in libraries),
            paid_cents=sum(library.paid_cents for library in libraries),
            spent_cents=sum(account["spent_cents"] for account in accounts),
            reclaimed_cents=sum(library.reclaim["amount_cents"] for library in libraries if library.reclaim),
            accounts_submitted=len(accounts),
            accounts_late=sum(1 for account in accounts if account["late"]),
        )
        return frame

    def library(self, library_id: str) -> dict[str, Any]:
        return self._library(library_id).snapshot()

    def libraries(self, *, municipality_code: str | None = None, late: bool | None = None) -> list[dict[str, Any]]:
        """All libraries, optionally only those serving a municipality, or with a late (or timely) account."""
        found = []
        for library in self._libraries():
            if municipality_code and all(
                entry["municipality_code"] != municipality_code for entry in library.service_area
            ):
                continue
            if late is not None and (library.account is None or library.account["late"] != late):
                continue
            found.append(library.snapshot())
        return sorted(found, key=lambda item: item["library_id"])

    def stream_events(self, stream_id: str) -> list[dict[str, Any]]:
        """The integration envelopes of one stream, in order (what the relay publishes)."""
        return [envelope_of(event) for event in self.repository.event_store.get(stream_uuid(stream_id))]

    def library_events(self, library_id: str) -> list[dict[str, Any]]:
        self._library(library_id)
        return self.stream_events(library_stream(library_id))

    def frame_events(self) -> list[dict[str, Any]]:
        self._frame()
        return self.stream_events(FRAME_STREAM)
