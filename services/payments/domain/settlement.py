"""What a settlement is decided on: the year's settlement rules and the ledger's figure (the books).

The rules come from configuration (``IDO_SETTLEMENT_RULES``, per grant year), not code: the
regulation fixes only the advance; settling at most the award and reclaiming paid − settled is the
usual SPUK pattern, which a year may leave. A settlement records the rules it was made under, so the
reclaim of a grant settled years ago does not change when the setting does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.payments.domain.errors import PaymentsRuleBroken
from services.payments.domain.money import format_euros


@dataclass(frozen=True)
class SettlementRules:
    cap: str = "award"
    """``award``: the settled amount is at most the award; ``none``: no cap beyond the reported spending."""
    reclaim: str = "paid-minus-settled"
    """``paid-minus-settled``: what was paid and not settled is reclaimed; ``none``: nothing is reclaimed."""

    def as_payload(self) -> dict[str, str]:
        return {"cap": self.cap, "reclaim": self.reclaim}

    @classmethod
    def of_payload(cls, payload: dict[str, str] | None) -> SettlementRules:
        """The rules a settlement recorded; before they were recorded, the usual pattern applied."""
        return cls(**payload) if payload else cls()

    def ceiling(self, reported_spending_cents: int, award_cents: int) -> int:
        """The most that may be settled."""
        if self.cap == "award":
            return min(reported_spending_cents, award_cents)
        return reported_spending_cents

    def reclaim_due(self, paid_cents: int, settled_cents: int) -> int:
        if self.reclaim == "none":
            return 0
        return max(paid_cents - settled_cents, 0)


@dataclass(frozen=True)
class BooksFigure:
    """The ledger's own spending figure for the grant (its settlement proposal) and the consumer
    offsets its view was read at, as the client passed them from ``GET .../settlement-proposal``."""

    spent_cents: int
    offsets: list[dict[str, Any]]

    def check_reported(self, reported_spending_cents: int, reason: str | None) -> None:
        """A settlement on another figure than the books needs a reason (and the ledger flags it)."""
        if reported_spending_cents != self.spent_cents and not reason:
            raise PaymentsRuleBroken(
                f"the reported spending of {format_euros(reported_spending_cents)} differs from the ledger's books "
                f"({format_euros(self.spent_cents)}): a settlement that differs from the books needs a reason",
                field="reason",
            )
