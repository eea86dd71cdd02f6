"""The bridging frame: its terms refused with their exact reason and field, the boundary values accepted, and an
amendment recorded with every previous figure.

Written for the mutation check (issue 20, docs/DEVELOPING.md "Mutation check"): mutants of ``BridgeFrame.set``,
``amend``, ``_check_dates`` and ``_check_frame`` survived the other bridge tests. No store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest

from services.bridge.domain.errors import BridgeError
from services.bridge.domain.frame import BridgeFrame
from services.bridge.domain.rounding import format_rate

START, SPENDING, ACCOUNT = date(2019, 1, 1), date(2023, 5, 1), date(2023, 9, 1)


def frame(frame_cents: int = 1000, **dates: date) -> BridgeFrame:
    terms = {"account_period_start": START, "spending_deadline": SPENDING, "account_deadline": ACCOUNT, **dates}
    return BridgeFrame.set(frame_cents=frame_cents, rate="15", **terms)


def refused(command: Callable[[], object]) -> tuple[str, str, str | None]:
    with pytest.raises(BridgeError) as error:
        command()
    return type(error.value).__name__, error.value.message, error.value.field


def test_a_frame_is_refused_with_its_reason_and_field_and_its_boundaries_accepted() -> None:
    positive = ("BridgeInvalidInput", "must be a positive whole number of cents", "frame_cents")
    for cents in (0, True, 1.0):
        assert refused(lambda: frame(cents)) == positive  # type: ignore[arg-type]  # noqa: B023
    assert refused(lambda: frame(spending_deadline=date(2018, 12, 31))) == (
        "BridgeInvalidInput", "must not be before account_period_start", "spending_deadline"
    )
    assert refused(lambda: frame(account_deadline=date(2023, 4, 30))) == (
        "BridgeInvalidInput", "must not be before spending_deadline", "account_deadline"
    )
    same_day = frame(1, spending_deadline=START, account_deadline=START)
    assert (same_day.frame_cents, same_day.spending_deadline, same_day.account_deadline) == (1, START, START)
    assert same_day.partition_key == "bridge-frame"


def test_an_amendment_is_refused_with_its_reason_and_field() -> None:
    terms = frame(1000)
    terms.commit(600, batch_id="b1")
    assert refused(lambda: terms.amend(reason=" ", frame_cents=900)) == (
        "BridgeInvalidInput", "an amendment needs a reason", "reason"
    )
    assert refused(lambda: terms.amend(reason="cut", frame_cents=0)) == (
        "BridgeInvalidInput", "must be a positive whole number of cents", "frame_cents"
    )
    assert refused(lambda: terms.amend(reason="cut", frame_cents=599)) == (
        "FrameExceeded", "the frame of 599 cents is below the 600 cents already granted", "frame_cents"
    )
    assert refused(lambda: terms.amend(reason="later", account_deadline=date(2023, 4, 30))) == (
        "BridgeInvalidInput", "must not be before spending_deadline", "account_deadline"
    )
    assert refused(lambda: terms.amend(reason="same", frame_cents=1000, rate=Decimal("15"))) == (
        "BridgeRuleBroken", "the amendment changes nothing", "_body"
    )
    assert refused(lambda: terms.commit(1001, library_id="NL-KVK-1")) == (
        "FrameExceeded", "the granted total would be 1001 cents, above the frame of 1000 cents", "amount_cents"
    )
    assert (terms.frame_cents, terms.committed_cents, terms.version) == (1000, 600, 2)


def test_an_amendment_keeps_the_unnamed_terms_and_records_the_previous_ones() -> None:
    terms = frame(1000)
    terms.commit(600, batch_id="b1")
    terms.amend(reason="  down to what is granted ", frame_cents=600, spending_deadline=date(2023, 6, 1),
                account_deadline=date(2023, 6, 1))
    amended = terms.collect_events()[-1]
    assert isinstance(amended, BridgeFrame.FrameAmended)
    assert (amended.frame_cents, amended.rate_cents_per_inhabitant, amended.account_period_start) == (
        600, "15", "2019-01-01"
    )
    assert (amended.spending_deadline, amended.account_deadline, amended.reason) == (
        "2023-06-01", "2023-06-01", "down to what is granted"
    )
    assert (amended.previous_frame_cents, amended.previous_spending_deadline, amended.previous_account_deadline) == (
        1000, "2023-05-01", "2023-09-01"
    )
    assert terms.snapshot() == {
        "frame_cents": 600,
        "rate_cents_per_inhabitant": "15",
        "account_period_start": START,
        "spending_deadline": date(2023, 6, 1),
        "account_deadline": date(2023, 6, 1),
        "committed_cents": 600,
        "uncommitted_cents": 0,
        "version": 3,
    }


def test_a_rate_has_one_spelling_whatever_its_trailing_zeros() -> None:
    assert [format_rate(Decimal(text)) for text in ("15", "15.0", "15.00", "15.50", "0.125", "100")] == [
        "15", "15", "15", "15.5", "0.125", "100"
    ]


def test_a_commitment_above_the_frame_names_the_grant_or_the_batch_total_and_one_within_records_its_source() -> None:
    """``BridgeFrame.commit``: a single grant's refusal names ``amount_cents``, a batch's (or a commitment with
    no source) ``total_cents``; the event keeps the batch or the library it came from."""
    terms = frame()
    terms.collect_events()
    above = "the granted total would be 1001 cents, above the frame of 1000 cents"
    for source, field in (({"library_id": "NL-KVK-1-A"}, "amount_cents"), ({"batch_id": "batch-1"}, "total_cents"),
                          ({}, "total_cents"), ({"batch_id": "batch-1", "library_id": "NL-KVK-1-A"}, "total_cents")):
        assert refused(lambda: terms.commit(1001, **source)) == ("FrameExceeded", above, field)  # noqa: B023
    terms.commit(1000, batch_id="batch-1")
    terms.commit(400, library_id="NL-KVK-1-A")
    recorded = [{k: getattr(e, k) for k in ("committed_cents", "previous_committed_cents", "frame_cents", "batch_id",
                                            "single_grant_library_id")} for e in terms.collect_events()]
    assert recorded == [
        {"committed_cents": 1000, "previous_committed_cents": 0, "frame_cents": 1000, "batch_id": "batch-1",
         "single_grant_library_id": None},
        {"committed_cents": 400, "previous_committed_cents": 1000, "frame_cents": 1000, "batch_id": None,
         "single_grant_library_id": "NL-KVK-1-A"},
    ]
