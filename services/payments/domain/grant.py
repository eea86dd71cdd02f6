"""One municipality's grant of one year: award -> advance -> settlement -> reclaim issued -> received.

Invariants:
- payments never exceed the award, and after settlement never exceed the settled amount;
- one settlement; a correction is a new settlement event naming the latest one it corrects;
- the settled amount is at most the reported spending, and at most the award when the year's
  settlement rules cap it there (``settlement.py``, from ``IDO_SETTLEMENT_RULES``);
- the reported spending defaults to the ledger's figure when the settlement names it (``books``);
  a settlement that differs from it needs a reason;
- the reclaim issued equals what the rules reclaim (by default paid - settled, when positive), and
  a correction may not bring that below what was already issued;
- what is received never exceeds what was issued;
- a merged municipality's open grant passes to its successor; the stream (and id) stays.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import TYPE_CHECKING, Any

from services.common.domain.chained import ChainedAggregate, stream_uuid
from services.payments.domain.errors import PaymentsConflict, PaymentsRuleBroken
from services.payments.domain.money import format_euros
from services.payments.domain.scheme import PRODUCER, check_cents, check_year
from services.payments.domain.settlement import BooksFigure, SettlementRules


def grant_stream(year: int, municipality_code: str) -> str:
    return f"grant-{year}-{municipality_code}"


def grant_uuid(grant_id: str) -> uuid.UUID:
    return stream_uuid(grant_id)


class Grant(ChainedAggregate):
    """Stream ``grant-<year>-<original code>``; partition key: the current holder's CBS code."""

    TOPIC = "ido:Grant"
    PRODUCER = PRODUCER

    if TYPE_CHECKING:
        grant_id: str
        year: int
        municipality_code: str
        original_municipality_code: str
        former_municipality_codes: list[str]
        municipality_name: str
        amount_cents: int
        awarded_on: str
        basis: str
        paid_cents: int
        last_paid_on: str | None
        reported_spending_cents: int | None
        settled_cents: int | None
        settled_on: str | None
        settlement_event_id: str | None
        settlements: int
        settlement_rules: dict[str, str]
        """The rules of the latest settlement, as it recorded them (``SettlementRules.as_payload``)."""
        books_spent_cents: int | None
        reclaim_issued_cents: int
        reclaim_issued_on: str | None
        reclaim_received_cents: int
        transfers: list[dict[str, str]]

    class Awarded(ChainedAggregate.Created):
        EVENT_TYPE = "GrantAwarded"
        grant_id: str
        year: int
        municipality_code: str
        municipality_name: str
        amount_cents: int
        awarded_on: str
        basis: str

        def apply(self, aggregate: Any) -> None:
            aggregate.grant_id = self.grant_id
            aggregate.year = self.year
            aggregate.municipality_code = self.municipality_code
            aggregate.original_municipality_code = self.municipality_code
            aggregate.former_municipality_codes = []
            aggregate.municipality_name = self.municipality_name
            aggregate.amount_cents = self.amount_cents
            aggregate.awarded_on = self.awarded_on
            aggregate.basis = self.basis
            aggregate.paid_cents = 0
            aggregate.last_paid_on = None
            aggregate.reported_spending_cents = None
            aggregate.settled_cents = None
            aggregate.settled_on = None
            aggregate.settlement_event_id = None
            aggregate.settlements = 0
            aggregate.settlement_rules = SettlementRules().as_payload()
            aggregate.books_spent_cents = None
            aggregate.reclaim_issued_cents = 0
            aggregate.reclaim_issued_on = None
            aggregate.reclaim_received_cents = 0
            aggregate.transfers = []

    class AdvancePaid(ChainedAggregate.Event):
        EVENT_TYPE = "AdvancePaid"
        grant_id: str
        year: int
        municipality_code: str
        amount_cents: int
        paid_on: str

        def apply(self, aggregate: Any) -> None:
            aggregate.paid_cents += self.amount_cents
            aggregate.last_paid_on = self.paid_on

    class Settled(ChainedAggregate.Event):
        EVENT_TYPE = "GrantSettled"
        grant_id: str
        year: int
        municipality_code: str
        reported_spending_cents: int
        settled_cents: int
        settled_on: str
        corrects_event_id: str | None
        reason: str | None
        # Since issue 15 (absent from settlements recorded before): the ledger's figure the settlement
        # was proposed with, and the settlement rules of the year it was made under.
        books_spent_cents: int | None
        books_offsets: list[dict[str, Any]] | None
        rules: dict[str, str] | None

        def apply(self, aggregate: Any) -> None:
            aggregate.settlement_rules = SettlementRules.of_payload(getattr(self, "rules", None)).as_payload()
            aggregate.books_spent_cents = getattr(self, "books_spent_cents", None)
            aggregate.reported_spending_cents = self.reported_spending_cents
            aggregate.settled_cents = self.settled_cents
            aggregate.settled_on = self.settled_on
            aggregate.settlement_event_id = self.event_id
            aggregate.settlements += 1

    class ReclaimIssued(ChainedAggregate.Event):
        EVENT_TYPE = "ReclaimIssued"
        grant_id: str
        year: int
        municipality_code: str
        amount_cents: int
        issued_on: str

        def apply(self, aggregate: Any) -> None:
            aggregate.reclaim_issued_cents += self.amount_cents
            if aggregate.reclaim_issued_on is None:
                aggregate.reclaim_issued_on = self.issued_on

    class ReclaimReceived(ChainedAggregate.Event):
        EVENT_TYPE = "ReclaimReceived"
        grant_id: str
        year: int
        municipality_code: str
        amount_cents: int
        received_on: str

        def apply(self, aggregate: Any) -> None:
            aggregate.reclaim_received_cents += self.amount_cents

    class Transferred(ChainedAggregate.Event):
        EVENT_TYPE = "GrantTransferred"
        grant_id: str
        year: int
        municipality_code: str
        from_municipality_code: str
        effective_on: str

        def apply(self, aggregate: Any) -> None:
            aggregate.former_municipality_codes.append(self.from_municipality_code)
            aggregate.municipality_code = self.municipality_code
            aggregate.transfers.append(
                {"from": self.from_municipality_code, "to": self.municipality_code, "effective_on": self.effective_on}
            )

    # --- commands -------------------------------------------------------------------------------

    @classmethod
    def award(
        cls, *, year: int, municipality_code: str, municipality_name: str, amount_cents: int, awarded_on: date,
        basis: str,
    ) -> Grant:
        check_year(year)
        check_cents(amount_cents, "amount_cents")
        grant_id = grant_stream(year, municipality_code)
        return cls._start(
            cls.Awarded,
            stream_id=grant_id,
            partition_key=municipality_code,
            grant_id=grant_id,
            year=year,
            municipality_code=municipality_code,
            municipality_name=municipality_name,
            amount_cents=amount_cents,
            awarded_on=awarded_on.isoformat(),
            basis=basis,
        )

    def _common(self) -> dict[str, Any]:
        return {"grant_id": self.grant_id, "year": self.year, "municipality_code": self.municipality_code}

    def _not_before_award(self, day: date, field: str) -> None:
        if day.isoformat() < self.awarded_on:
            raise PaymentsRuleBroken(f"cannot be before the award of {self.awarded_on}", field=field)

    def pay(self, amount_cents: int, paid_on: date) -> None:
        check_cents(amount_cents, "amount_cents")
        self._not_before_award(paid_on, "paid_on")
        if self.paid_cents + amount_cents > max(self.amount_cents, self.settled_cents or 0):
            raise PaymentsRuleBroken(
                f"payments may not exceed the award of {format_euros(self.amount_cents)}: "
                f"{format_euros(self.paid_cents)} is paid, at most {format_euros(self.amount_cents - self.paid_cents)} "
                "can still be paid",
                field="amount_cents",
            )
        if self.settled_cents is not None and self.paid_cents + amount_cents > self.settled_cents:
            raise PaymentsRuleBroken(
                f"the grant is settled at {format_euros(self.settled_cents)}: payments may not exceed it "
                f"({format_euros(self.paid_cents)} is paid)",
                field="amount_cents",
            )
        self._record(self.AdvancePaid, **self._common(), amount_cents=amount_cents, paid_on=paid_on.isoformat())

    def settle(
        self,
        *,
        reported_spending_cents: int | None,
        settled_on: date,
        rules: SettlementRules | None = None,
        books: BooksFigure | None = None,
        settled_cents: int | None = None,
        corrects_event_id: str | None = None,
        reason: str | None = None,
    ) -> str:
        """Records the settlement (vaststelling) or a correction of it; returns the new event id.

        ``rules``: the settlement rules of the grant's year (the application passes the configured
        ones; None is the usual pattern); ``books``: the ledger's figure, which is the reported spending
        when none is given."""
        rules = rules or SettlementRules()
        reason = reason.strip() if reason and reason.strip() else None
        if reported_spending_cents is None:
            if books is None:
                raise PaymentsRuleBroken(
                    "give the reported spending, or the ledger's figure (books) to settle on",
                    field="reported_spending_cents",
                )
            reported_spending_cents = books.spent_cents
        check_cents(reported_spending_cents, "reported_spending_cents", minimum=0)
        if books is not None:
            books.check_reported(reported_spending_cents, reason)
        if self.settlement_event_id is None and corrects_event_id is not None:
            raise PaymentsConflict(
                "the grant is not settled yet, so there is no settlement to correct", field="corrects_event_id"
            )
        if self.settlement_event_id is not None:
            if corrects_event_id is None:
                raise PaymentsConflict(
                    f"the grant is already settled (event {self.settlement_event_id}); a correction must name "
                    "that event in corrects_event_id",
                    field="corrects_event_id",
                )
            if str(corrects_event_id) != self.settlement_event_id:
                raise PaymentsConflict(
                    f"a correction must correct the latest settlement, event {self.settlement_event_id}, "
                    f"not {corrects_event_id}",
                    field="corrects_event_id",
                )
            if not reason:
                raise PaymentsRuleBroken("a correction of a settlement needs a reason", field="reason")
        ceiling = rules.ceiling(reported_spending_cents, self.amount_cents)
        if settled_cents is None:
            settled_cents = ceiling
        check_cents(settled_cents, "settled_cents", minimum=0)
        if rules.cap == "award" and settled_cents > self.amount_cents:
            raise PaymentsRuleBroken(
                f"the settled amount may not exceed the award of {format_euros(self.amount_cents)}",
                field="settled_cents",
            )
        if settled_cents > reported_spending_cents:
            raise PaymentsRuleBroken(
                f"the settled amount may not exceed the reported spending of {format_euros(reported_spending_cents)}",
                field="settled_cents",
            )
        if settled_cents < ceiling and not reason:
            raise PaymentsRuleBroken(
                f"settling below the eligible maximum of {format_euros(ceiling)} needs a reason", field="reason"
            )
        if settled_on.year <= self.year:
            raise PaymentsRuleBroken(
                f"the grant of {self.year} is settled after the year ends (spending is accounted in SiSa "
                f"by 15 July {self.year + 1})",
                field="settled_on",
            )
        self._not_before_award(settled_on, "settled_on")
        if self.settled_on is not None and settled_on.isoformat() < self.settled_on:
            raise PaymentsRuleBroken(
                f"a correction cannot be dated before the settlement it corrects ({self.settled_on})",
                field="settled_on",
            )
        if self.settlement_event_id is not None and (
            settled_cents == self.settled_cents and reported_spending_cents == self.reported_spending_cents
        ):
            raise PaymentsRuleBroken("the correction changes neither the reported spending nor the settled amount")
        reclaim_due = rules.reclaim_due(self.paid_cents, settled_cents)
        if reclaim_due < self.reclaim_issued_cents:
            raise PaymentsConflict(
                f"{format_euros(self.reclaim_issued_cents)} is already reclaimed; settling at "
                f"{format_euros(settled_cents)} would leave only {format_euros(reclaim_due)} to reclaim",
                field="settled_cents",
            )
        self._record(
            self.Settled,
            **self._common(),
            reported_spending_cents=reported_spending_cents,
            settled_cents=settled_cents,
            settled_on=settled_on.isoformat(),
            corrects_event_id=str(corrects_event_id) if corrects_event_id else None,
            reason=reason,
            books_spent_cents=books.spent_cents if books is not None else None,
            books_offsets=books.offsets if books is not None else None,
            rules=rules.as_payload(),
        )
        return self.last_event_id

    @property
    def reclaim_due_cents(self) -> int:
        """What the settlement's rules reclaim (by default what is paid and not settled): the total
        the reclaim must come to."""
        if self.settled_cents is None:
            return 0
        return SettlementRules.of_payload(self.settlement_rules).reclaim_due(self.paid_cents, self.settled_cents)

    @property
    def reclaim_to_issue_cents(self) -> int:
        return self.reclaim_due_cents - self.reclaim_issued_cents

    @property
    def reclaim_outstanding_cents(self) -> int:
        return self.reclaim_issued_cents - self.reclaim_received_cents

    @property
    def payable_cents(self) -> int:
        """What BZK still owes after settlement (settled above what was paid)."""
        if self.settled_cents is None:
            return 0
        return max(self.settled_cents - self.paid_cents, 0)

    @property
    def closed(self) -> bool:
        return (
            self.settled_cents is not None
            and self.reclaim_to_issue_cents == 0
            and self.reclaim_outstanding_cents == 0
            and self.payable_cents == 0
        )

    @property
    def status(self) -> str:
        if self.closed:
            return "closed"
        if self.reclaim_outstanding_cents > 0:
            return "reclaim_issued"
        if self.settled_cents is not None:
            return "settled"
        if self.paid_cents > 0:
            return "advanced"
        return "awarded"

    @property
    def municipality_codes(self) -> list[str]:
        """Every code the grant was known under: the original, then each successor."""
        return [*self.former_municipality_codes, self.municipality_code]

    def issue_reclaim(self, amount_cents: int, issued_on: date) -> None:
        check_cents(amount_cents, "amount_cents")
        if self.settled_cents is None or self.settled_on is None:
            raise PaymentsConflict("a reclaim is issued after settlement; the grant is not settled")
        if self.reclaim_to_issue_cents <= 0:
            raise PaymentsConflict(
                f"nothing to reclaim: paid {format_euros(self.paid_cents)}, settled "
                f"{format_euros(self.settled_cents)}, already reclaimed {format_euros(self.reclaim_issued_cents)}"
            )
        if amount_cents != self.reclaim_to_issue_cents:
            already = (
                f" - already reclaimed {format_euros(self.reclaim_issued_cents)}" if self.reclaim_issued_cents else ""
            )
            raise PaymentsRuleBroken(
                f"the reclaim must be what was paid and not settled: {format_euros(self.reclaim_to_issue_cents)} "
                f"(paid {format_euros(self.paid_cents)} - settled {format_euros(self.settled_cents)}{already}), "
                f"not {format_euros(amount_cents)}",
                field="amount_cents",
            )
        if issued_on.isoformat() < self.settled_on:
            raise PaymentsRuleBroken(f"cannot be before the settlement of {self.settled_on}", field="issued_on")
        self._record(self.ReclaimIssued, **self._common(), amount_cents=amount_cents, issued_on=issued_on.isoformat())

    def receive_reclaim(self, amount_cents: int, received_on: date) -> None:
        check_cents(amount_cents, "amount_cents")
        if self.reclaim_outstanding_cents <= 0:
            raise PaymentsConflict("no reclaim is outstanding on this grant")
        if amount_cents > self.reclaim_outstanding_cents:
            raise PaymentsRuleBroken(
                f"more than was reclaimed: {format_euros(self.reclaim_outstanding_cents)} is outstanding, "
                f"not {format_euros(amount_cents)}",
                field="amount_cents",
            )
        assert self.reclaim_issued_on is not None
        if received_on.isoformat() < self.reclaim_issued_on:
            raise PaymentsRuleBroken(
                f"cannot be before the reclaim was issued ({self.reclaim_issued_on})", field="received_on"
            )
        self._record(
            self.ReclaimReceived, **self._common(), amount_cents=amount_cents, received_on=received_on.isoformat()
        )

    def transfer(self, successor_code: str, effective_on: date) -> None:
        """The holder merged into ``successor_code``: the grant passes to it, keeping its stream."""
        if successor_code == self.municipality_code:
            raise PaymentsConflict(f"the grant is already held by {successor_code}", field="successor_code")
        if successor_code in self.former_municipality_codes:
            raise PaymentsConflict(
                f"{successor_code} held this grant before; a grant does not pass back", field="successor_code"
            )
        if self.closed:
            raise PaymentsConflict(f"the grant {self.grant_id} is closed; only open grants pass to a successor")
        previous = self.municipality_code
        # The stream keeps its Kafka key (the code it was awarded to) for life: one stream, one
        # partition, so consumers see its events in order even across a merger.
        self._record(
            self.Transferred,
            grant_id=self.grant_id,
            year=self.year,
            municipality_code=successor_code,
            from_municipality_code=previous,
            effective_on=effective_on.isoformat(),
        )
