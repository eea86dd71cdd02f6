"""A library organisation in the bridging arrangement: service area, grant, payments, final account."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from contracts.identifiers import CBS_CODE, CBS_CODE_REASON, ORG_ID, ORG_ID_REASON
from services.bridge.domain.errors import (
    BridgeConflict,
    BridgeInvalidInput,
    BridgeRuleBroken,
    FileClosed,
    OverPayment,
)
from services.bridge.domain.frame import BridgeFrame
from services.bridge.domain.rounding import format_rate
from services.common.domain.chained import ChainedAggregate

MAX_INHABITANTS = 10**8


def library_stream(library_id: str) -> str:
    return f"library-{library_id}"


def check_library_id(library_id: str, field: str = "library_id") -> str:
    if not isinstance(library_id, str) or not ORG_ID.fullmatch(library_id):
        raise BridgeInvalidInput(ORG_ID_REASON, field=field)
    return library_id


def normalise_service_area(entries: Iterable[Mapping[str, Any]], field: str = "service_area") -> list[dict[str, Any]]:
    """Checks a service area and returns it sorted by municipality code, as stored in events."""
    area: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        code = entry.get("municipality_code")
        inhabitants = entry.get("inhabitants")
        if not isinstance(code, str) or not CBS_CODE.fullmatch(code):
            raise BridgeInvalidInput(CBS_CODE_REASON, field=f"{field}.{index}.municipality_code")
        if code in seen:
            raise BridgeInvalidInput(f"{code} appears twice", field=f"{field}.{index}.municipality_code")
        if isinstance(inhabitants, bool) or not isinstance(inhabitants, int) or not 0 <= inhabitants <= MAX_INHABITANTS:
            raise BridgeInvalidInput(
                f"must be a whole number from 0 to {MAX_INHABITANTS}", field=f"{field}.{index}.inhabitants"
            )
        seen.add(code)
        area.append({"municipality_code": code, "inhabitants": inhabitants})
    if not area:
        raise BridgeInvalidInput("a library serves at least one municipality", field=field)
    return sorted(area, key=lambda item: item["municipality_code"])


_DATE_FIELDS = ("paid_on", "issued_on", "submitted_on", "period_start", "period_end", "account_deadline")


def _with_dates(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a stored record with its ISO date strings as dates."""
    return {key: date.fromisoformat(value) if key in _DATE_FIELDS else value for key, value in record.items()}


class Library(ChainedAggregate):
    """One library organisation (stream ``library-<id>``, partition key the id).

    Invariants: paid never exceeds the grant; after the final account the grant and payments are
    closed; the unspent part of what was paid is reclaimed with the account.
    """

    TOPIC = "ido:BridgeLibrary"
    PRODUCER = "bridge"

    if TYPE_CHECKING:
        library_id: str
        name: str
        service_area: list[dict[str, Any]]
        grant_cents: int | None
        grant_event_id: str | None
        grant_basis: str | None
        paid_cents: int
        payments: list[dict[str, Any]]
        account: dict[str, Any] | None
        reclaim: dict[str, Any] | None

    class Registered(ChainedAggregate.Created):
        EVENT_TYPE = "LibraryRegistered"
        library_id: str
        name: str
        service_area: list[dict[str, Any]]

        def apply(self, aggregate: Any) -> None:
            aggregate.library_id = self.library_id
            aggregate.name = self.name
            aggregate.service_area = [dict(entry) for entry in self.service_area]
            aggregate.grant_cents = None
            aggregate.grant_event_id = None
            aggregate.grant_basis = None
            aggregate.paid_cents = 0
            aggregate.payments = []
            aggregate.account = None
            aggregate.reclaim = None

    class ServiceAreaChanged(ChainedAggregate.Event):
        EVENT_TYPE = "LibraryServiceAreaChanged"
        library_id: str
        service_area: list[dict[str, Any]]
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.service_area = [dict(entry) for entry in self.service_area]

    class GrantSet(ChainedAggregate.Event):
        EVENT_TYPE = "BridgeGrantSet"
        library_id: str
        amount_cents: int
        inhabitants: int
        basis: str
        batch_id: str | None
        rate_cents_per_inhabitant: str | None
        corrects_event_id: str | None
        reason: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.grant_cents = self.amount_cents
            aggregate.grant_event_id = self.event_id
            aggregate.grant_basis = self.basis

    class PaymentMade(ChainedAggregate.Event):
        EVENT_TYPE = "BridgePaymentMade"
        library_id: str
        amount_cents: int
        paid_on: str
        payment_batch_id: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.paid_cents += self.amount_cents
            aggregate.payments.append(
                {"event_id": self.event_id, "amount_cents": self.amount_cents, "paid_on": self.paid_on}
            )

    class AccountSubmitted(ChainedAggregate.Event):
        EVENT_TYPE = "BridgeAccountSubmitted"
        library_id: str
        grant_cents: int
        paid_cents: int
        spent_cents: int
        unspent_cents: int
        period_start: str
        period_end: str
        submitted_on: str
        account_deadline: str
        late: bool

        def apply(self, aggregate: Any) -> None:
            kept = (
                "spent_cents",
                "unspent_cents",
                "period_start",
                "period_end",
                "submitted_on",
                "account_deadline",
                "late",
            )
            aggregate.account = {"event_id": self.event_id, **{name: getattr(self, name) for name in kept}}

    class ReclaimIssued(ChainedAggregate.Event):
        EVENT_TYPE = "BridgeReclaimIssued"
        library_id: str
        amount_cents: int
        issued_on: str
        account_event_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.reclaim = {
                "event_id": self.event_id,
                "amount_cents": self.amount_cents,
                "issued_on": self.issued_on,
            }

    # -- commands ---------------------------------------------------------------------------------

    @classmethod
    def register(cls, *, library_id: str, name: str, service_area: Iterable[Mapping[str, Any]]) -> Library:
        check_library_id(library_id)
        if not isinstance(name, str) or not name.strip():
            raise BridgeInvalidInput("must not be empty", field="name")
        if len(name) > 200:
            raise BridgeInvalidInput("at most 200 characters", field="name")
        return cls._start(
            cls.Registered,
            stream_id=library_stream(library_id),
            partition_key=library_id,
            library_id=library_id,
            name=name.strip(),
            service_area=normalise_service_area(service_area),
        )

    def change_service_area(self, service_area: Iterable[Mapping[str, Any]], *, reason: str) -> None:
        """A new service area; the grant stays until it is recomputed or corrected."""
        if not reason or not reason.strip():
            raise BridgeInvalidInput("a change of service area needs a reason", field="reason")
        area = normalise_service_area(service_area)
        if area == self.service_area:
            raise BridgeRuleBroken("the service area is unchanged", field="service_area")
        self._record(self.ServiceAreaChanged, library_id=self.library_id, service_area=area, reason=reason.strip())

    @property
    def inhabitants(self) -> int:
        return sum(int(entry["inhabitants"]) for entry in self.service_area)

    def check_grant_change(self, amount_cents: int, field: str = "amount_cents") -> None:
        if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents < 0:
            raise BridgeInvalidInput("must be a whole number of cents, not negative", field=field)
        if self.account is not None:
            raise FileClosed(f"{self.library_id} has submitted its final account; its grant is closed", field=field)
        if amount_cents < self.paid_cents:
            raise OverPayment(
                f"{self.library_id} was already paid {self.paid_cents} cents; its grant cannot drop to {amount_cents}",
                field=field,
            )

    def set_computed_grant(self, amount_cents: int, *, batch_id: str, rate: Decimal) -> None:
        self._set_grant(amount_cents, basis="computed", batch_id=batch_id, rate=format_rate(rate), reason=None)

    def set_single_grant(self, amount_cents: int, *, reason: str, corrects_event_id: str | None) -> None:
        """Enters a first grant (``corrects_event_id`` None) or corrects the current one (its event id)."""
        if not reason or not reason.strip():
            raise BridgeInvalidInput("entering or correcting a grant needs a reason", field="reason")
        if self.grant_event_id is None and corrects_event_id is not None:
            raise BridgeConflict(
                f"{self.library_id} has no grant yet; there is nothing to correct", field="corrects_event_id"
            )
        if self.grant_event_id is not None and corrects_event_id != self.grant_event_id:
            raise BridgeConflict(
                f"the current grant of {self.library_id} is event {self.grant_event_id}; "
                "a correction must reference it",
                field="corrects_event_id",
            )
        basis = "entered" if corrects_event_id is None else "corrected"
        self._set_grant(amount_cents, basis=basis, batch_id=None, rate=None, reason=reason.strip())

    def _set_grant(
        self, amount_cents: int, *, basis: str, batch_id: str | None, rate: str | None, reason: str | None
    ) -> None:
        """Every grant event refers to the one it replaces (``corrects_event_id``), computed or entered."""
        self.check_grant_change(amount_cents)
        self._record(
            self.GrantSet,
            library_id=self.library_id,
            amount_cents=amount_cents,
            inhabitants=self.inhabitants,
            basis=basis,
            batch_id=batch_id,
            rate_cents_per_inhabitant=rate,
            corrects_event_id=self.grant_event_id,
            reason=reason,
        )

    def pay(self, amount_cents: int, *, paid_on: date, payment_batch_id: str | None = None) -> None:
        if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents < 1:
            raise BridgeInvalidInput("must be a whole number of cents, at least 1", field="amount_cents")
        if self.account is not None:
            raise FileClosed(f"{self.library_id} has submitted its final account; no more payments", field="paid_on")
        if self.grant_cents is None:
            raise BridgeRuleBroken(f"{self.library_id} has no grant yet", field="library_id")
        if self.paid_cents + amount_cents > self.grant_cents:
            raise OverPayment(
                f"paying {amount_cents} cents would take {self.library_id} to {self.paid_cents + amount_cents} cents, "
                f"above its grant of {self.grant_cents}",
                field="amount_cents",
            )
        self._record(
            self.PaymentMade,
            library_id=self.library_id,
            amount_cents=amount_cents,
            paid_on=paid_on.isoformat(),
            payment_batch_id=payment_batch_id,
        )

    def submit_account(self, *, spent_cents: int, submitted_on: date, frame: BridgeFrame, issued_on: date) -> None:
        """The final account over the account period; what was paid and not spent is reclaimed at once.

        ``unspent = paid − min(spent, paid)``: spending above what was paid is not paid out afterwards
        (payments stop with the account). The account is late when submitted after the account deadline.
        """
        if isinstance(spent_cents, bool) or not isinstance(spent_cents, int) or spent_cents < 0:
            raise BridgeInvalidInput("must be a whole number of cents, not negative", field="spent_cents")
        if self.account is not None:
            raise BridgeConflict(f"{self.library_id} already submitted its final account", field="library_id")
        if self.grant_cents is None:
            raise BridgeRuleBroken(f"{self.library_id} has no grant to account for", field="library_id")
        if submitted_on < frame.account_period_start:
            raise BridgeInvalidInput("before the account period starts", field="submitted_on")
        unspent = self.paid_cents - min(spent_cents, self.paid_cents)
        self._record(
            self.AccountSubmitted,
            library_id=self.library_id,
            grant_cents=self.grant_cents,
            paid_cents=self.paid_cents,
            spent_cents=spent_cents,
            unspent_cents=unspent,
            period_start=frame.account_period_start.isoformat(),
            period_end=frame.spending_deadline.isoformat(),
            submitted_on=submitted_on.isoformat(),
            account_deadline=frame.account_deadline.isoformat(),
            late=frame.is_late(submitted_on),
        )
        if unspent > 0:
            self._record(
                self.ReclaimIssued,
                library_id=self.library_id,
                amount_cents=unspent,
                issued_on=issued_on.isoformat(),
                account_event_id=self.last_event_id,
            )

    def snapshot(self) -> dict[str, Any]:
        return {
            "library_id": self.library_id,
            "name": self.name,
            "service_area": [dict(entry) for entry in self.service_area],
            "inhabitants": self.inhabitants,
            "grant": None
            if self.grant_cents is None
            else {"amount_cents": self.grant_cents, "event_id": self.grant_event_id, "basis": self.grant_basis},
            "paid_cents": self.paid_cents,
            "outstanding_cents": (self.grant_cents or 0) - self.paid_cents,
            "payments": [_with_dates(payment) for payment in self.payments],
            "account": None if self.account is None else _with_dates(self.account),
            "reclaim": None if self.reclaim is None else _with_dates(self.reclaim),
            "version": self.version,
        }
