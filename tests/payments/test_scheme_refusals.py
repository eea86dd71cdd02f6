"""The frame's amendment refused with its exact reason and field, and recorded with its exact payload.

Written for the mutation check (issue 20, docs/DEVELOPING.md "Mutation check"): each assertion kills a
mutant of ``GrantScheme.amend_frame`` that the scheme's other tests let live.
"""

from __future__ import annotations

from datetime import date

import pytest

from services.payments.domain.errors import PaymentsError, PaymentsRuleBroken
from services.payments.domain.scheme import Allocation, GrantScheme

FRAME = 1_713_000_000
D = date


def scheme_with_award(awarded_cents: int = 0) -> GrantScheme:
    scheme = GrantScheme.set_frame(2024, FRAME, D(2023, 12, 1))
    if awarded_cents:
        scheme.allocate(
            [Allocation("2024-GM0363", "GM0363", "Amsterdam", awarded_cents)], basis="single", awarded_on=D(2024, 1, 15)
        )
    return scheme


def refusal(scheme: GrantScheme, frame_cents: int, decided_on: date, reason: str) -> tuple[str, str | None]:
    with pytest.raises(PaymentsRuleBroken) as refused:
        scheme.amend_frame(frame_cents, decided_on, reason)
    return refused.value.message, refused.value.field


def test_each_refused_amendment_names_its_reason_and_field_and_records_nothing() -> None:
    scheme = scheme_with_award(72_500_000)
    assert refusal(scheme, -1, D(2024, 2, 1), "cut") == ("must be at least 0 cent(s)", "frame_cents")
    assert refusal(scheme, 72_500_000, D(2024, 2, 1), " \t") == ("an amendment of the frame needs a reason", "reason")
    assert refusal(scheme, FRAME, D(2024, 2, 1), "same") == (
        "the frame of 2024 is already € 17130000.00; an amendment must change it",
        "frame_cents",
    )
    assert refusal(scheme, 72_499_999, D(2024, 2, 1), "cut") == (
        "the frame of 2024 may not fall below the € 725000.00 already awarded",
        "frame_cents",
    )
    assert refusal(scheme, 72_500_000, D(2023, 11, 30), "cut") == (
        "an amendment cannot be decided before the decision it amends (2023-12-01)",
        "decided_on",
    )
    assert (scheme.frame_cents, scheme.amendments, scheme.version) == (FRAME, 0, 2)


def test_a_frame_may_be_amended_to_zero_on_the_day_of_its_decision_with_the_reason_trimmed() -> None:
    scheme = scheme_with_award()
    scheme.amend_frame(0, D(2023, 12, 1), "  the year is cancelled ")
    amended = scheme.collect_events()[-1]
    assert isinstance(amended, GrantScheme.FrameAmended)
    assert (amended.year, amended.frame_cents, amended.previous_frame_cents, amended.decided_on, amended.reason) == (
        2024, 0, FRAME, "2023-12-01", "the year is cancelled"
    )
    assert (scheme.frame_cents, scheme.decided_on, scheme.amendments, scheme.remaining_cents) == (0, "2023-12-01", 1, 0)


def test_a_frame_is_set_for_a_grant_year_with_whole_cents_and_may_be_zero() -> None:
    for year in (2022, 2101, True, "2024"):
        with pytest.raises(PaymentsRuleBroken) as refused:
            GrantScheme.set_frame(year, FRAME, D(2023, 12, 1))  # type: ignore[arg-type]
        assert (refused.value.message, refused.value.field) == (
            f"the grant exists for the years 2023 to 2100, not {year!r}", "year"
        )
    for cents, reason in ((-1, "must be at least 0 cent(s)"), (1.0, "must be a whole number of cents")):
        with pytest.raises(PaymentsRuleBroken) as refused:
            GrantScheme.set_frame(2024, cents, D(2023, 12, 1))  # type: ignore[arg-type]
        assert (refused.value.message, refused.value.field) == (reason, "frame_cents")
    first, last = GrantScheme.set_frame(2023, 0, D(2022, 12, 1)), GrantScheme.set_frame(2100, 1, D(2099, 12, 1))
    assert (first.year, first.frame_cents, last.year, last.frame_cents) == (2023, 0, 2100, 1)
    assert (first.partition_key, first.decided_on) == ("scheme-2023", "2022-12-01")


def test_a_batch_of_awards_is_refused_whole_with_its_reason_and_field() -> None:
    scheme = scheme_with_award(100)
    one = Allocation("2024-GM0599", "GM0599", "Rotterdam", 100)

    def allocation_refused(allocations: list[Allocation], basis: str = "annex") -> tuple[str, str | None]:
        with pytest.raises(PaymentsError) as refused:
            scheme.allocate(allocations, basis=basis, awarded_on=D(2024, 1, 15))
        return refused.value.message, refused.value.field

    assert allocation_refused([]) == ("a batch of awards must hold at least one award", None)
    assert allocation_refused([one], basis="guess") == ("unknown basis 'guess'", "basis")
    assert allocation_refused([Allocation("2024-GM0599", "GM0599", "Rotterdam", 0)]) == (
        "must be at least 1 cent(s)", "amount_cents"
    )
    assert allocation_refused([Allocation("2024-GM0363", "GM0363", "Amsterdam", 1)]) == (
        "GM0363 is already awarded a grant for 2024", "municipality_code"
    )
    assert allocation_refused([one, one]) == ("GM0599 is already awarded a grant for 2024", "municipality_code")
    assert allocation_refused([Allocation("2024-GM0599", "GM0599", "Rotterdam", FRAME - 99)]) == (
        "the awards of 2024 would total € 17130000.01, over the frame of € 17130000.00 by € 0.01", "amount_cents"
    )
    assert (scheme.awarded_cents, scheme.grants_awarded, scheme.version) == (100, 1, 2)
    scheme.allocate([Allocation("2024-GM0599", "GM0599", "Rotterdam", FRAME - 100)], basis="annex",
                    awarded_on=D(2024, 1, 16))
    allocated = scheme.collect_events()[-1]
    assert isinstance(allocated, GrantScheme.FrameAllocated)
    assert (allocated.allocated_cents, allocated.awarded_cents, allocated.frame_cents, allocated.basis) == (
        FRAME - 100, FRAME, FRAME, "annex"
    )
    assert (allocated.awarded_on, scheme.remaining_cents) == ("2024-01-16", 0)
