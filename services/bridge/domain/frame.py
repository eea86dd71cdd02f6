"""The bridging frame: one stream holding the frame, the rate, the deadlines and the committed total."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from services.bridge.domain.errors import BridgeInvalidInput, BridgeRuleBroken, FrameExceeded
from services.bridge.domain.rounding import format_rate, parse_rate
from services.common.domain.chained import ChainedAggregate

FRAME_STREAM = "bridge-frame"
FRAME_PARTITION_KEY = "bridge-frame"
DEFAULT_FRAME_CENTS = 270_000_000
"""€ 2,700,000: the frame of the arrangement."""


def _check_dates(account_period_start: date, spending_deadline: date, account_deadline: date) -> None:
    if spending_deadline < account_period_start:
        raise BridgeInvalidInput("must not be before account_period_start", field="spending_deadline")
    if account_deadline < spending_deadline:
        raise BridgeInvalidInput("must not be before spending_deadline", field="account_deadline")


def _check_frame(frame_cents: int) -> None:
    if isinstance(frame_cents, bool) or not isinstance(frame_cents, int) or frame_cents < 1:
        raise BridgeInvalidInput("must be a positive whole number of cents", field="frame_cents")


def _set_terms(frame: Any, event: Any) -> None:
    """The terms a ``FrameSet`` and a ``FrameAmended`` both state, onto the frame."""
    frame.frame_cents = event.frame_cents
    frame.rate = Decimal(event.rate_cents_per_inhabitant)
    frame.account_period_start = date.fromisoformat(event.account_period_start)
    frame.spending_deadline = date.fromisoformat(event.spending_deadline)
    frame.account_deadline = date.fromisoformat(event.account_deadline)


class BridgeFrame(ChainedAggregate):
    """The frame (€ 2.7 M), the rate per inhabitant, the deadlines, and the total committed to grants.

    Every change of any library's grant also records a ``BridgeCommitmentChanged`` here, in the same
    transaction, so concurrent grant changes conflict on this stream (optimistic concurrency) and the
    committed total can never pass the frame. Its events are few: one per batch or single grant.
    """

    TOPIC = "ido:BridgeFrame"
    PRODUCER = "bridge"

    if TYPE_CHECKING:
        frame_cents: int
        rate: Decimal
        account_period_start: date
        spending_deadline: date
        account_deadline: date
        committed_cents: int

    class FrameSet(ChainedAggregate.Created):
        EVENT_TYPE = "BridgeFrameSet"
        frame_cents: int
        rate_cents_per_inhabitant: str
        account_period_start: str
        spending_deadline: str
        account_deadline: str

        def apply(self, aggregate: Any) -> None:
            _set_terms(aggregate, self)
            aggregate.committed_cents = 0

    class FrameAmended(ChainedAggregate.Event):
        EVENT_TYPE = "BridgeFrameAmended"
        frame_cents: int
        rate_cents_per_inhabitant: str
        account_period_start: str
        spending_deadline: str
        account_deadline: str
        previous_frame_cents: int
        previous_spending_deadline: str
        previous_account_deadline: str
        reason: str

        def apply(self, aggregate: Any) -> None:
            _set_terms(aggregate, self)

    class CommitmentChanged(ChainedAggregate.Event):
        EVENT_TYPE = "BridgeCommitmentChanged"
        committed_cents: int
        previous_committed_cents: int
        frame_cents: int
        batch_id: str | None
        single_grant_library_id: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.committed_cents = self.committed_cents

    @classmethod
    def set(
        cls,
        *,
        frame_cents: int,
        rate: Decimal | str,
        account_period_start: date,
        spending_deadline: date,
        account_deadline: date,
    ) -> BridgeFrame:
        _check_frame(frame_cents)
        _check_dates(account_period_start, spending_deadline, account_deadline)
        return cls._start(
            cls.FrameSet,
            stream_id=FRAME_STREAM,
            partition_key=FRAME_PARTITION_KEY,
            frame_cents=frame_cents,
            rate_cents_per_inhabitant=format_rate(parse_rate(rate)),
            account_period_start=account_period_start.isoformat(),
            spending_deadline=spending_deadline.isoformat(),
            account_deadline=account_deadline.isoformat(),
        )

    def amend(
        self,
        *,
        reason: str,
        frame_cents: int | None = None,
        rate: Decimal | str | None = None,
        account_period_start: date | None = None,
        spending_deadline: date | None = None,
        account_deadline: date | None = None,
    ) -> None:
        """Changes any of the settings; the rest stays. The frame never drops below the committed total."""
        if not reason or not reason.strip():
            raise BridgeInvalidInput("an amendment needs a reason", field="reason")
        new_frame = self.frame_cents if frame_cents is None else frame_cents
        _check_frame(new_frame)
        if new_frame < self.committed_cents:
            raise FrameExceeded(
                f"the frame of {new_frame} cents is below the {self.committed_cents} cents already granted",
                field="frame_cents",
            )
        new_rate = self.rate if rate is None else parse_rate(rate)
        start = account_period_start or self.account_period_start
        spending = spending_deadline or self.spending_deadline
        account = account_deadline or self.account_deadline
        _check_dates(start, spending, account)
        if (new_frame, new_rate, start, spending, account) == (
            self.frame_cents, self.rate, self.account_period_start, self.spending_deadline, self.account_deadline
        ):
            raise BridgeRuleBroken("the amendment changes nothing", field="_body")
        self._record(
            self.FrameAmended,
            frame_cents=new_frame,
            rate_cents_per_inhabitant=format_rate(new_rate),
            account_period_start=start.isoformat(),
            spending_deadline=spending.isoformat(),
            account_deadline=account.isoformat(),
            previous_frame_cents=self.frame_cents,
            previous_spending_deadline=self.spending_deadline.isoformat(),
            previous_account_deadline=self.account_deadline.isoformat(),
            reason=reason.strip(),
        )

    def commit(self, committed_cents: int, *, batch_id: str | None = None, library_id: str | None = None) -> None:
        """Records the new total of all grants; refused when it would exceed the frame."""
        if committed_cents > self.frame_cents:
            raise FrameExceeded(
                f"the granted total would be {committed_cents} cents, above the frame of {self.frame_cents} cents",
                field="amount_cents" if library_id and not batch_id else "total_cents",
            )
        self._record(
            self.CommitmentChanged,
            committed_cents=committed_cents,
            previous_committed_cents=self.committed_cents,
            frame_cents=self.frame_cents,
            batch_id=batch_id,
            single_grant_library_id=library_id,
        )

    def is_late(self, submitted_on: date) -> bool:
        """An account submitted after the account deadline is late; on the day itself it is not."""
        return submitted_on > self.account_deadline

    def snapshot(self) -> dict[str, Any]:
        return {
            "frame_cents": self.frame_cents,
            "rate_cents_per_inhabitant": format_rate(self.rate),
            "account_period_start": self.account_period_start,
            "spending_deadline": self.spending_deadline,
            "account_deadline": self.account_deadline,
            "committed_cents": self.committed_cents,
            "uncommitted_cents": self.frame_cents - self.committed_cents,
            "version": self.version,
        }
