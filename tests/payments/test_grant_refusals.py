"""A grant's payments, settlement, reclaim and transfer: every refusal with its exact reason and field, each
boundary day accepted, and the recorded figures to the cent.

Written for the mutation check (issue 20, docs/DEVELOPING.md "Mutation check"): the HTTP tests check some of
these through the API, on a store; these check them on the aggregate alone, so the mutation run can judge
``Grant`` in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from services.payments.domain.errors import PaymentsError
from services.payments.domain.grant import Grant
from services.payments.domain.money import format_euros
from services.payments.domain.settlement import BooksFigure

D = date
AWARD = 1000
"""€ 10.00: small figures keep the messages short."""


def granted() -> Grant:
    return Grant.award(
        year=2024, municipality_code="GM0363", municipality_name="Amsterdam", amount_cents=AWARD,
        awarded_on=D(2024, 1, 15), basis="single",
    )


def refused(command: Callable[[], object]) -> tuple[str, str, str | None]:
    """The refusal's class, message and field; the command must be refused."""
    with pytest.raises(PaymentsError) as error:
        command()
    return type(error.value).__name__, error.value.message, error.value.field


RULE = "PaymentsRuleBroken"
CONFLICT = "PaymentsConflict"


def test_payments_are_refused_before_the_award_and_above_it_and_allowed_on_its_day() -> None:
    grant = granted()
    assert refused(lambda: grant.pay(0, D(2024, 2, 1))) == (RULE, "must be at least 1 cent(s)", "amount_cents")
    assert refused(lambda: grant.pay(100, D(2024, 1, 14))) == (
        RULE, "cannot be before the award of 2024-01-15", "paid_on"
    )
    grant.pay(100, D(2024, 1, 15))
    assert refused(lambda: grant.pay(901, D(2024, 2, 1))) == (
        RULE,
        "payments may not exceed the award of € 10.00: € 1.00 is paid, at most € 9.00 can still be paid",
        "amount_cents",
    )
    grant.pay(900, D(2024, 2, 1))
    assert (grant.paid_cents, grant.status, grant.version) == (AWARD, "advanced", 3)


def test_a_settlement_is_refused_with_its_reason_and_field() -> None:
    grant = granted()
    grant.pay(AWARD, D(2024, 2, 1))
    on = D(2025, 3, 1)
    assert refused(lambda: grant.settle(reported_spending_cents=None, settled_on=on)) == (
        RULE, "give the reported spending, or the ledger's figure (books) to settle on", "reported_spending_cents"
    )
    assert refused(lambda: grant.settle(reported_spending_cents=-1, settled_on=on)) == (
        RULE, "must be at least 0 cent(s)", "reported_spending_cents"
    )
    assert refused(lambda: grant.settle(reported_spending_cents=800, settled_on=on, corrects_event_id="x")) == (
        CONFLICT, "the grant is not settled yet, so there is no settlement to correct", "corrects_event_id"
    )
    assert refused(lambda: grant.settle(reported_spending_cents=800, settled_on=on, settled_cents=-1)) == (
        RULE, "must be at least 0 cent(s)", "settled_cents"
    )
    assert refused(lambda: grant.settle(reported_spending_cents=2000, settled_on=on, settled_cents=1001)) == (
        RULE, "the settled amount may not exceed the award of € 10.00", "settled_cents"
    )
    assert refused(lambda: grant.settle(reported_spending_cents=800, settled_on=on, settled_cents=801)) == (
        RULE, "the settled amount may not exceed the reported spending of € 8.00", "settled_cents"
    )
    assert refused(lambda: grant.settle(reported_spending_cents=800, settled_on=on, settled_cents=799)) == (
        RULE, "settling below the eligible maximum of € 8.00 needs a reason", "reason"
    )
    assert refused(lambda: grant.settle(reported_spending_cents=800, settled_on=D(2024, 12, 31))) == (
        RULE,
        "the grant of 2024 is settled after the year ends (spending is accounted in SiSa by 15 July 2025)",
        "settled_on",
    )
    books = BooksFigure(spent_cents=700, offsets=[{"topic": "t", "partition": 0, "offset": 5}])
    assert refused(lambda: grant.settle(reported_spending_cents=800, settled_on=on, books=books, reason=" ")) == (
        RULE,
        "the reported spending of € 8.00 differs from the ledger's books (€ 7.00): "
        "a settlement that differs from the books needs a reason",
        "reason",
    )
    assert (grant.settled_cents, grant.version) == (None, 2)


def test_a_settlement_on_the_books_records_their_figure_and_offsets_and_a_settlement_of_nothing_is_allowed() -> None:
    grant = granted()
    grant.pay(AWARD, D(2024, 2, 1))
    books = BooksFigure(spent_cents=700, offsets=[{"topic": "t", "partition": 0, "offset": 5}])
    grant.settle(reported_spending_cents=None, settled_on=D(2025, 1, 1), books=books, reason="  ")
    settled = grant.collect_events()[-1]
    assert isinstance(settled, Grant.Settled)
    assert (settled.reported_spending_cents, settled.settled_cents, settled.settled_on, settled.reason) == (
        700, 700, "2025-01-01", None
    )
    assert (settled.books_spent_cents, settled.books_offsets) == (700, [{"topic": "t", "partition": 0, "offset": 5}])
    assert (grant.reclaim_due_cents, grant.reclaim_to_issue_cents, grant.status) == (300, 300, "settled")

    nothing = granted()
    nothing.settle(reported_spending_cents=0, settled_on=D(2025, 1, 1))
    assert (nothing.settled_cents, nothing.closed, nothing.status) == (0, True, "closed")


def test_a_correction_is_refused_with_its_reason_and_may_be_dated_on_the_settlements_day() -> None:
    grant = granted()
    grant.pay(AWARD, D(2024, 2, 1))
    first = grant.settle(reported_spending_cents=800, settled_on=D(2025, 3, 1))
    on = D(2025, 3, 1)
    assert refused(lambda: grant.settle(reported_spending_cents=700, settled_on=on)) == (
        CONFLICT,
        f"the grant is already settled (event {first}); a correction must name that event in corrects_event_id",
        "corrects_event_id",
    )
    assert refused(lambda: grant.settle(reported_spending_cents=700, settled_on=on, corrects_event_id="other")) == (
        CONFLICT, f"a correction must correct the latest settlement, event {first}, not other", "corrects_event_id"
    )
    assert refused(lambda: grant.settle(reported_spending_cents=700, settled_on=on, corrects_event_id=first)) == (
        RULE, "a correction of a settlement needs a reason", "reason"
    )
    assert refused(
        lambda: grant.settle(
            reported_spending_cents=700, settled_on=D(2025, 2, 28), corrects_event_id=first, reason="r"
        )
    ) == (RULE, "a correction cannot be dated before the settlement it corrects (2025-03-01)", "settled_on")
    assert refused(
        lambda: grant.settle(reported_spending_cents=800, settled_on=on, corrects_event_id=first, reason="r")
    ) == (RULE, "the correction changes neither the reported spending nor the settled amount", None)
    # the same settled amount on another reported figure is a correction
    grant.settle(
        reported_spending_cents=900, settled_on=on, settled_cents=800, corrects_event_id=first, reason=" books "
    )
    corrected = grant.collect_events()[-1]
    assert isinstance(corrected, Grant.Settled)
    assert (corrected.reported_spending_cents, corrected.settled_cents) == (900, 800)
    assert (corrected.corrects_event_id, corrected.reason) == (first, "books")


def test_a_reclaim_is_refused_with_its_reason_and_may_be_issued_and_received_on_the_same_day() -> None:
    grant = granted()
    grant.pay(AWARD, D(2024, 2, 1))
    assert refused(lambda: grant.issue_reclaim(200, D(2025, 3, 1))) == (
        CONFLICT, "a reclaim is issued after settlement; the grant is not settled", None
    )
    assert refused(lambda: grant.receive_reclaim(200, D(2025, 3, 1))) == (
        CONFLICT, "no reclaim is outstanding on this grant", None
    )
    grant.settle(reported_spending_cents=999, settled_on=D(2025, 3, 1))
    assert grant.reclaim_to_issue_cents == 1
    assert refused(lambda: grant.issue_reclaim(0, D(2025, 3, 1))) == (
        RULE, "must be at least 1 cent(s)", "amount_cents"
    )
    assert refused(lambda: grant.issue_reclaim(2, D(2025, 3, 1))) == (
        RULE,
        "the reclaim must be what was paid and not settled: € 0.01 (paid € 10.00 - settled € 9.99), not € 0.02",
        "amount_cents",
    )
    assert refused(lambda: grant.issue_reclaim(1, D(2025, 2, 28))) == (
        RULE, "cannot be before the settlement of 2025-03-01", "issued_on"
    )
    grant.issue_reclaim(1, D(2025, 3, 1))
    assert refused(lambda: grant.issue_reclaim(1, D(2025, 3, 2))) == (
        CONFLICT, "nothing to reclaim: paid € 10.00, settled € 9.99, already reclaimed € 0.01", None
    )
    assert refused(lambda: grant.receive_reclaim(2, D(2025, 3, 2))) == (
        RULE, "more than was reclaimed: € 0.01 is outstanding, not € 0.02", "amount_cents"
    )
    assert refused(lambda: grant.receive_reclaim(1, D(2025, 2, 28))) == (
        RULE, "cannot be before the reclaim was issued (2025-03-01)", "received_on"
    )
    grant.receive_reclaim(1, D(2025, 3, 1))
    assert (grant.reclaim_issued_cents, grant.reclaim_received_cents, grant.status) == (1, 1, "closed")


def test_a_second_reclaim_after_a_lower_correction_names_what_was_already_reclaimed() -> None:
    grant = granted()
    grant.pay(AWARD, D(2024, 2, 1))
    first = grant.settle(reported_spending_cents=900, settled_on=D(2025, 3, 1))
    grant.issue_reclaim(100, D(2025, 3, 1))
    grant.settle(reported_spending_cents=800, settled_on=D(2025, 4, 1), corrects_event_id=first, reason="audit")
    assert refused(lambda: grant.issue_reclaim(200, D(2025, 4, 1))) == (
        RULE,
        "the reclaim must be what was paid and not settled: € 1.00 "
        "(paid € 10.00 - settled € 8.00 - already reclaimed € 1.00), not € 2.00",
        "amount_cents",
    )


def test_a_transfer_is_refused_to_the_holder_back_to_a_former_one_and_when_closed() -> None:
    grant = granted()
    assert refused(lambda: grant.transfer("GM0363", D(2024, 6, 1))) == (
        CONFLICT, "the grant is already held by GM0363", "successor_code"
    )
    grant.transfer("GM0344", D(2024, 6, 1))
    assert refused(lambda: grant.transfer("GM0363", D(2024, 7, 1))) == (
        CONFLICT, "GM0363 held this grant before; a grant does not pass back", "successor_code"
    )
    assert (grant.municipality_code, grant.municipality_codes) == ("GM0344", ["GM0363", "GM0344"])
    closed = granted()
    closed.settle(reported_spending_cents=0, settled_on=D(2025, 1, 1))
    assert refused(lambda: closed.transfer("GM0344", D(2025, 6, 1))) == (
        CONFLICT, "the grant grant-2024-GM0363 is closed; only open grants pass to a successor", None
    )


def test_after_a_settlement_below_the_award_payments_stop_at_the_settled_amount() -> None:
    grant = granted()
    grant.settle(reported_spending_cents=800, settled_on=D(2025, 3, 1))
    assert grant.payable_cents == 800
    assert refused(lambda: grant.pay(801, D(2025, 3, 2))) == (
        RULE, "the grant is settled at € 8.00: payments may not exceed it (€ 0.00 is paid)", "amount_cents"
    )
    assert refused(lambda: grant.receive_reclaim(0, D(2025, 3, 2))) == (
        RULE, "must be at least 1 cent(s)", "amount_cents"
    )
    grant.pay(800, D(2025, 3, 2))
    assert (grant.paid_cents, grant.payable_cents, grant.status) == (800, 0, "closed")


def test_an_award_of_less_than_a_cent_is_refused_naming_the_amount() -> None:
    def award(cents: int) -> Grant:
        return Grant.award(year=2024, municipality_code="GM0363", municipality_name="Amsterdam", amount_cents=cents,
                           awarded_on=D(2024, 1, 15), basis="single")

    assert refused(lambda: award(0)) == (RULE, "must be at least 1 cent(s)", "amount_cents")
    assert award(1).amount_cents == 1


def test_a_settlement_before_a_late_award_and_one_that_would_undo_a_reclaim_are_refused_by_field() -> None:
    late = Grant.award(year=2024, municipality_code="GM0363", municipality_name="Amsterdam", amount_cents=AWARD,
                       awarded_on=D(2025, 6, 1), basis="single")
    assert refused(lambda: late.settle(reported_spending_cents=0, settled_on=D(2025, 5, 31))) == (
        RULE, "cannot be before the award of 2025-06-01", "settled_on"
    )
    grant = granted()
    grant.pay(AWARD, D(2024, 2, 1))
    first = grant.settle(reported_spending_cents=800, settled_on=D(2025, 3, 1))
    grant.issue_reclaim(200, D(2025, 3, 1))
    assert refused(lambda: grant.settle(reported_spending_cents=900, settled_on=D(2025, 4, 1),
                                        corrects_event_id=first, reason="audit")) == (
        CONFLICT, "€ 2.00 is already reclaimed; settling at € 9.00 would leave only € 1.00 to reclaim", "settled_cents"
    )


def test_a_settlement_that_differs_from_the_books_is_taken_with_a_reason() -> None:
    grant = granted()
    grant.pay(AWARD, D(2024, 2, 1))
    books = BooksFigure(spent_cents=700, offsets=[{"topic": "t", "partition": 0, "offset": 5}])
    grant.settle(reported_spending_cents=800, settled_on=D(2025, 3, 1), books=books, reason="SiSa says 800")
    assert (grant.reported_spending_cents, grant.settled_cents, grant.books_spent_cents) == (800, 800, 700)


def test_a_negative_amount_is_written_with_its_sign() -> None:
    assert (format_euros(-150), format_euros(-1), format_euros(0), format_euros(150)) == (
        "-€ 1.50", "-€ 0.01", "€ 0.00", "€ 1.50"
    )
