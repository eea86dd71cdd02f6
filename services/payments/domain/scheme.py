"""The yearly budget of the grant: its frame, and the awards allocated from it.

Invariants: the awards of a year never exceed its frame; the frame changes only by an explicit
amendment (never below what is already awarded); a municipality is awarded once a year.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from contracts.identifiers import LAST_YEAR
from services.common.domain.chained import ChainedAggregate, stream_uuid
from services.payments.domain.errors import PaymentsConflict, PaymentsRuleBroken
from services.payments.domain.money import format_euros

PRODUCER = "payments"
FIRST_YEAR = 2023
"""The regulation grants from 2023 on."""


def scheme_stream(year: int) -> str:
    return f"scheme-{year}"


def scheme_id(year: int) -> uuid.UUID:
    return stream_uuid(scheme_stream(year))


@dataclass(frozen=True)
class Allocation:
    grant_id: str
    municipality_code: str
    municipality_name: str
    amount_cents: int

    def as_payload(self) -> dict[str, Any]:
        return {
            "grant_id": self.grant_id,
            "municipality_code": self.municipality_code,
            "municipality_name": self.municipality_name,
            "amount_cents": self.amount_cents,
        }


def check_year(year: int) -> None:
    if not isinstance(year, int) or isinstance(year, bool) or not FIRST_YEAR <= year <= LAST_YEAR:
        raise PaymentsRuleBroken(
            f"the grant exists for the years {FIRST_YEAR} to {LAST_YEAR}, not {year!r}", field="year"
        )


def check_cents(value: int, field: str, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise PaymentsRuleBroken("must be a whole number of cents", field=field)
    if value < minimum:
        raise PaymentsRuleBroken(f"must be at least {minimum} cent(s)", field=field)


class GrantScheme(ChainedAggregate):
    """Stream ``scheme-<year>``, partition key ``scheme-<year>``."""

    TOPIC = "ido:GrantScheme"
    PRODUCER = PRODUCER

    if TYPE_CHECKING:
        year: int
        frame_cents: int
        decided_on: str
        awarded_cents: int
        awards: dict[str, dict[str, Any]]
        amendments: int

    class FrameSet(ChainedAggregate.Created):
        EVENT_TYPE = "GrantFrameSet"
        year: int
        frame_cents: int
        decided_on: str

        def apply(self, aggregate: Any) -> None:
            aggregate.year = self.year
            aggregate.frame_cents = self.frame_cents
            aggregate.decided_on = self.decided_on
            aggregate.awarded_cents = 0
            aggregate.awards = {}
            aggregate.amendments = 0

    class FrameAmended(ChainedAggregate.Event):
        EVENT_TYPE = "GrantFrameAmended"
        year: int
        frame_cents: int
        previous_frame_cents: int
        decided_on: str
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.frame_cents = self.frame_cents
            aggregate.decided_on = self.decided_on
            aggregate.amendments += 1

    class FrameAllocated(ChainedAggregate.Event):
        EVENT_TYPE = "FrameAllocated"
        year: int
        batch_id: str
        basis: str
        awarded_on: str
        source_sha256: str | None
        awards: list[dict[str, Any]]
        allocated_cents: int
        awarded_cents: int
        frame_cents: int

        def apply(self, aggregate: Any) -> None:
            for award in self.awards:
                aggregate.awards[award["grant_id"]] = dict(award)
            aggregate.awarded_cents = self.awarded_cents

    # --- commands -------------------------------------------------------------------------------

    @classmethod
    def set_frame(cls, year: int, frame_cents: int, decided_on: date) -> GrantScheme:
        check_year(year)
        check_cents(frame_cents, "frame_cents", minimum=0)
        return cls._start(
            cls.FrameSet,
            stream_id=scheme_stream(year),
            partition_key=scheme_stream(year),
            year=year,
            frame_cents=frame_cents,
            decided_on=decided_on.isoformat(),
        )

    def amend_frame(self, frame_cents: int, decided_on: date, reason: str) -> None:
        check_cents(frame_cents, "frame_cents", minimum=0)
        if not reason or not reason.strip():
            raise PaymentsRuleBroken("an amendment of the frame needs a reason", field="reason")
        if frame_cents == self.frame_cents:
            raise PaymentsRuleBroken(
                f"the frame of {self.year} is already {format_euros(frame_cents)}; an amendment must change it",
                field="frame_cents",
            )
        if frame_cents < self.awarded_cents:
            raise PaymentsRuleBroken(
                f"the frame of {self.year} may not fall below the {format_euros(self.awarded_cents)} already awarded",
                field="frame_cents",
            )
        if decided_on.isoformat() < self.decided_on:
            raise PaymentsRuleBroken(
                f"an amendment cannot be decided before the decision it amends ({self.decided_on})",
                field="decided_on",
            )
        self._record(
            self.FrameAmended,
            year=self.year,
            frame_cents=frame_cents,
            previous_frame_cents=self.frame_cents,
            decided_on=decided_on.isoformat(),
            reason=reason.strip(),
        )

    @property
    def remaining_cents(self) -> int:
        return self.frame_cents - self.awarded_cents

    @property
    def grants_awarded(self) -> int:
        return len(self.awards)

    def allocate(
        self,
        allocations: list[Allocation],
        *,
        basis: str,
        awarded_on: date,
        source_sha256: str | None = None,
    ) -> str:
        """Records one batch of awards; returns its batch id. All or nothing."""
        if not allocations:
            raise PaymentsRuleBroken("a batch of awards must hold at least one award")
        if basis not in ("annex", "single"):
            raise PaymentsRuleBroken(f"unknown basis {basis!r}", field="basis")
        seen: set[str] = set()
        for allocation in allocations:
            check_cents(allocation.amount_cents, "amount_cents")
            if allocation.grant_id in self.awards or allocation.grant_id in seen:
                raise PaymentsConflict(
                    f"{allocation.municipality_code} is already awarded a grant for {self.year}",
                    field="municipality_code",
                )
            seen.add(allocation.grant_id)
        allocated = sum(a.amount_cents for a in allocations)
        if self.awarded_cents + allocated > self.frame_cents:
            raise PaymentsRuleBroken(
                f"the awards of {self.year} would total {format_euros(self.awarded_cents + allocated)}, "
                f"over the frame of {format_euros(self.frame_cents)} by "
                f"{format_euros(self.awarded_cents + allocated - self.frame_cents)}",
                field="amount_cents",
            )
        batch_id = str(uuid.uuid4())
        self._record(
            self.FrameAllocated,
            year=self.year,
            batch_id=batch_id,
            basis=basis,
            awarded_on=awarded_on.isoformat(),
            source_sha256=source_sha256,
            awards=[a.as_payload() for a in allocations],
            allocated_cents=allocated,
            awarded_cents=self.awarded_cents + allocated,
            frame_cents=self.frame_cents,
        )
        return batch_id
