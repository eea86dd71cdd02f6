"""Settling on the ledger's figure and under the year's configured rules (issue 15), in the domain."""

from __future__ import annotations

from datetime import date

import pytest

from services.payments.domain.errors import PaymentsRuleBroken
from services.payments.domain.grant import Grant
from services.payments.domain.settlement import BooksFigure, SettlementRules

AWARD = 100_000
OFFSETS = [{"topic": "ido.expenditures.v1", "partition": 0, "next_offset": 7}]


def paid_grant() -> Grant:
    grant = Grant.award(year=2024, municipality_code="GM0363", municipality_name="Amsterdam", amount_cents=AWARD,
                        awarded_on=date(2024, 1, 10), basis="single")
    grant.pay(AWARD, date(2024, 1, 20))
    return grant


def test_the_books_figure_is_the_default_and_a_differing_figure_needs_a_reason() -> None:
    grant = paid_grant()
    with pytest.raises(PaymentsRuleBroken) as refused:
        grant.settle(reported_spending_cents=60_000, books=BooksFigure(70_000, OFFSETS), settled_on=date(2025, 9, 1))
    assert refused.value.field == "reason"
    with pytest.raises(PaymentsRuleBroken) as neither:
        grant.settle(reported_spending_cents=None, settled_on=date(2025, 9, 1))
    assert neither.value.field == "reported_spending_cents"
    grant.settle(reported_spending_cents=None, books=BooksFigure(70_000, OFFSETS), settled_on=date(2025, 9, 1))
    assert (grant.reported_spending_cents, grant.settled_cents, grant.reclaim_due_cents) == (70_000, 70_000, 30_000)
    assert grant.books_spent_cents == 70_000


def test_the_rules_of_the_year_decide_the_cap_and_the_reclaim_and_are_recorded() -> None:
    no_cap = paid_grant()
    no_cap.settle(reported_spending_cents=120_000, settled_on=date(2025, 9, 1), rules=SettlementRules("none", "none"))
    assert (no_cap.settled_cents, no_cap.reclaim_due_cents, no_cap.payable_cents) == (120_000, 0, 20_000)
    no_cap.pay(20_000, date(2025, 9, 2))  # what is settled above the award may be paid
    assert no_cap.settlement_rules == {"cap": "none", "reclaim": "none"}

    capped = paid_grant()
    with pytest.raises(PaymentsRuleBroken) as over:
        capped.settle(reported_spending_cents=120_000, settled_cents=120_000, settled_on=date(2025, 9, 1),
                      rules=SettlementRules())
    assert over.value.field == "settled_cents"
    capped.settle(reported_spending_cents=40_000, settled_on=date(2025, 9, 1), rules=SettlementRules())
    assert (capped.settled_cents, capped.reclaim_due_cents) == (40_000, 60_000)


def test_a_settlement_recorded_before_the_rules_keeps_the_usual_pattern() -> None:
    assert SettlementRules.of_payload(None) == SettlementRules("award", "paid-minus-settled")
    assert SettlementRules("award", "none").reclaim_due(100, 40) == 0
    assert SettlementRules().ceiling(120, 100) == 100 and SettlementRules("none").ceiling(120, 100) == 120
