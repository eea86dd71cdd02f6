"""Every invariant of the scheme and the grant, on the in-memory event store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from contracts import validate_envelope
from contracts.canonical import GENESIS_HASH
from services.payments.application.app import PaymentsApplication
from services.payments.domain.errors import (
    AnnexRefused,
    ConcurrentChange,
    GrantNotFound,
    PaymentsConflict,
    PaymentsRuleBroken,
    SchemeNotFound,
)
from services.payments.domain.grant import Grant
from services.payments.domain.scheme import Allocation, GrantScheme

FRAME = 1_713_000_000
AWARD = 72_500_000
D = date


@pytest.fixture
def app() -> PaymentsApplication:
    return PaymentsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def conflict_of(call: Callable[[], Any]) -> tuple[str, str | None]:
    """The message and field of the PaymentsConflict ``call`` raises (it must raise one)."""
    with pytest.raises(PaymentsConflict) as refused:
        call()
    return refused.value.message, refused.value.field


def awarded(app: PaymentsApplication, frame: int = FRAME, amount: int = AWARD) -> Grant:
    app.set_frame(2024, frame, D(2023, 12, 1))
    grant = app.award_grant(2024, "GM0363", "Amsterdam", amount, D(2024, 1, 15)).value
    assert isinstance(grant, Grant)
    return grant


def event_types(app: PaymentsApplication, aggregate: Grant | GrantScheme) -> list[str]:
    return [e["event_type"] for e in app.history(aggregate.id)]


# --- the scheme -----------------------------------------------------------------------------------


def test_awards_never_exceed_the_frame(app: PaymentsApplication) -> None:
    app.set_frame(2024, 1000, D(2023, 12, 1))
    app.award_grant(2024, "GM0363", "Amsterdam", 600, D(2024, 1, 15))
    with pytest.raises(PaymentsRuleBroken, match="over the frame"):
        app.award_grant(2024, "GM0599", "Rotterdam", 401, D(2024, 1, 15))
    with pytest.raises(GrantNotFound):
        app.grant(2024, "GM0599")
    app.award_grant(2024, "GM0599", "Rotterdam", 400, D(2024, 1, 15))  # exactly the frame is fine
    scheme = app.scheme(2024)
    assert (scheme.awarded_cents, scheme.remaining_cents, scheme.grants_awarded) == (1000, 0, 2)


def test_award_needs_a_frame_and_a_grant_year(app: PaymentsApplication) -> None:
    with pytest.raises(SchemeNotFound):
        app.award_grant(2024, "GM0363", "Amsterdam", AWARD, D(2024, 1, 15))
    with pytest.raises(PaymentsRuleBroken, match="2023"):
        app.set_frame(2022, FRAME, D(2021, 12, 1))


def test_frame_changes_only_by_an_amendment(app: PaymentsApplication) -> None:
    assert app.set_frame(2024, FRAME, D(2023, 12, 1)).created
    assert not app.set_frame(2024, FRAME, D(2023, 12, 1)).created  # the same decision again: no event
    with pytest.raises(PaymentsConflict, match="amendment"):
        app.set_frame(2024, FRAME - 1, D(2023, 12, 1))
    app.award_grant(2024, "GM0363", "Amsterdam", AWARD, D(2024, 1, 15))
    with pytest.raises(PaymentsRuleBroken, match="below"):
        app.amend_frame(2024, AWARD - 1, D(2024, 2, 1), "cut")
    with pytest.raises(PaymentsRuleBroken, match="reason"):
        app.amend_frame(2024, AWARD, D(2024, 2, 1), " ")
    with pytest.raises(PaymentsRuleBroken, match="already"):
        app.amend_frame(2024, FRAME, D(2024, 2, 1), "same")
    scheme = app.amend_frame(2024, AWARD, D(2024, 2, 1), "10 % cut")
    assert scheme.frame_cents == AWARD
    assert event_types(app, scheme) == ["GrantFrameSet", "FrameAllocated", "GrantFrameAmended"]
    amended = app.history(scheme.id)[-1]["payload"]
    assert (amended["previous_frame_cents"], amended["frame_cents"]) == (FRAME, AWARD)
    with pytest.raises(PaymentsRuleBroken, match="over the frame"):
        app.award_grant(2024, "GM0599", "Rotterdam", 1, D(2024, 2, 2))


def test_one_award_per_municipality_and_year(app: PaymentsApplication) -> None:
    awarded(app)
    again = app.award_grant(2024, "GM0363", "Amsterdam", AWARD, D(2024, 1, 15))
    assert not again.created
    with pytest.raises(PaymentsConflict, match="already awarded"):
        app.award_grant(2024, "GM0363", "Amsterdam", AWARD + 1, D(2024, 1, 15))
    assert app.scheme(2024).awarded_cents == AWARD
    assert app.scheme(2024).version == 2


ANNEX = b"# illustrative\nGM0363,Amsterdam,725000.00\nGM0599,Rotterdam,540000.00\n"


def test_annex_import_is_one_batch_and_idempotent(app: PaymentsApplication) -> None:
    app.set_frame(2024, FRAME, D(2023, 12, 1))
    result = app.import_annex(2024, ANNEX, D(2024, 1, 15))
    assert result.awarded == ["grant-2024-GM0363", "grant-2024-GM0599"]
    assert result.allocated_cents == 126_500_000
    scheme = app.scheme(2024)
    assert scheme.version == 2  # one FrameAllocated event for the whole file
    batch = app.history(scheme.id)[-1]["payload"]
    assert [a["grant_id"] for a in batch["awards"]] == result.awarded
    assert batch["source_sha256"] == result.source_sha256
    max_id = app.recorder.max_notification_id()
    again = app.import_annex(2024, ANNEX, D(2024, 1, 15))
    assert (again.awarded, again.batch_id) == ([], None)
    assert again.unchanged == result.awarded
    assert app.recorder.max_notification_id() == max_id  # nothing stored
    # a longer file: only the new row is awarded
    more = app.import_annex(2024, ANNEX + b"GM0344,Utrecht,310000.00\n", D(2024, 1, 16))
    assert more.awarded == ["grant-2024-GM0344"]
    assert app.scheme(2024).awarded_cents == 157_500_000


def test_annex_that_breaks_the_frame_is_refused_whole(app: PaymentsApplication) -> None:
    app.set_frame(2024, 126_499_999, D(2023, 12, 1))
    max_id = app.recorder.max_notification_id()
    with pytest.raises(AnnexRefused, match="over the frame") as refused:
        app.import_annex(2024, ANNEX, D(2024, 1, 15))
    assert refused.value.file_errors and "by € 0.01" in refused.value.file_errors[0]
    assert app.recorder.max_notification_id() == max_id
    assert app.grants(2024) == []


def test_annex_with_bad_rows_is_refused_whole_naming_each(app: PaymentsApplication) -> None:
    app.set_frame(2024, FRAME, D(2023, 12, 1))
    app.import_annex(2024, ANNEX, D(2024, 1, 15))
    bad = ANNEX.replace(b"540000.00", b"540000.01") + b"GM0344,Utrecht,3.141\nGM0014,Groningen,1.00\n"
    with pytest.raises(AnnexRefused) as refused:
        app.import_annex(2024, bad, D(2024, 1, 15))
    assert [(r.line, r.field) for r in refused.value.rows] == [(3, "amount"), (4, "amount")]
    assert "already awarded" in refused.value.rows[0].reason
    assert "two decimals" in refused.value.rows[1].reason
    assert app.scheme(2024).grants_awarded == 2  # Groningen, a good row, was not awarded either


def test_concurrent_awards_cannot_both_pass_the_frame(app: PaymentsApplication) -> None:
    app.set_frame(2024, 1000, D(2023, 12, 1))
    first = app.scheme(2024)
    second = app.scheme(2024)

    a = Grant.award(year=2024, municipality_code="GM0363", municipality_name="A", amount_cents=600,
                    awarded_on=D(2024, 1, 15), basis="single")
    b = Grant.award(year=2024, municipality_code="GM0599", municipality_name="R", amount_cents=600,
                    awarded_on=D(2024, 1, 15), basis="single")
    first.allocate([Allocation(a.grant_id, "GM0363", "A", 600)], basis="single", awarded_on=D(2024, 1, 15))
    second.allocate([Allocation(b.grant_id, "GM0599", "R", 600)], basis="single", awarded_on=D(2024, 1, 15))
    app._save(first, a)
    with pytest.raises(ConcurrentChange):
        app._save(second, b)
    assert app.scheme(2024).awarded_cents == 600
    assert [g.grant_id for g in app.grants(2024)] == ["grant-2024-GM0363"]
    with pytest.raises(GrantNotFound):
        app.grant(2024, "GM0599")  # the grant of the refused batch was not stored either


# --- the grant ------------------------------------------------------------------------------------


def test_payments_never_exceed_the_award(app: PaymentsApplication) -> None:
    awarded(app, amount=1000)
    app.pay_advance(2024, "GM0363", 700, D(2024, 1, 31))
    with pytest.raises(PaymentsRuleBroken, match="exceed the award"):
        app.pay_advance(2024, "GM0363", 301, D(2024, 2, 1))
    grant = app.pay_advance(2024, "GM0363", 300, D(2024, 2, 1))
    assert grant.paid_cents == 1000 and grant.status == "advanced"
    with pytest.raises(PaymentsRuleBroken, match="exceed the award"):
        app.pay_advance(2024, "GM0363", 1, D(2024, 2, 1))
    app.award_grant(2024, "GM0599", "Rotterdam", 5, D(2024, 1, 15))
    with pytest.raises(PaymentsRuleBroken, match="before the award"):
        app.pay_advance(2024, "GM0599", 5, D(2024, 1, 14))


def test_settlement_is_spending_at_most_the_award(app: PaymentsApplication) -> None:
    awarded(app, amount=1000)
    app.pay_advance(2024, "GM0363", 1000, D(2024, 1, 31))
    with pytest.raises(PaymentsRuleBroken, match="after the year ends"):
        app.settle(2024, "GM0363", reported_spending_cents=900, settled_on=D(2024, 12, 31))
    with pytest.raises(PaymentsRuleBroken, match="may not exceed the award"):
        app.settle(2024, "GM0363", reported_spending_cents=5000, settled_cents=1001, settled_on=D(2025, 9, 1))
    with pytest.raises(PaymentsRuleBroken, match="reported spending"):
        app.settle(2024, "GM0363", reported_spending_cents=500, settled_cents=600, settled_on=D(2025, 9, 1))
    with pytest.raises(PaymentsRuleBroken, match="needs a reason"):
        app.settle(2024, "GM0363", reported_spending_cents=900, settled_cents=800, settled_on=D(2025, 9, 1))
    grant = app.settle(2024, "GM0363", reported_spending_cents=1500, settled_on=D(2025, 9, 1))
    assert grant.settled_cents == 1000  # capped at the award
    assert grant.status == "closed" and grant.reclaim_due_cents == 0


def test_one_settlement_and_corrections_reference_the_latest(app: PaymentsApplication) -> None:
    awarded(app, amount=1000)
    app.pay_advance(2024, "GM0363", 1000, D(2024, 1, 31))
    with pytest.raises(PaymentsConflict, match="not settled yet"):
        app.settle(2024, "GM0363", reported_spending_cents=1, settled_on=D(2025, 9, 1),
                   corrects_event_id="6a4c1f1e-0000-4000-8000-000000000000", reason="x")
    first = app.settle(2024, "GM0363", reported_spending_cents=800, settled_on=D(2025, 9, 1))
    first_id = first.settlement_event_id
    assert first.reclaim_due_cents == 200
    with pytest.raises(PaymentsConflict, match="already settled"):
        app.settle(2024, "GM0363", reported_spending_cents=700, settled_on=D(2025, 9, 2))
    with pytest.raises(PaymentsRuleBroken, match="needs a reason"):
        app.settle(2024, "GM0363", reported_spending_cents=700, settled_on=D(2025, 9, 2), corrects_event_id=first_id)
    corrected = app.settle(2024, "GM0363", reported_spending_cents=700, settled_on=D(2025, 9, 2),
                           corrects_event_id=first_id, reason="SiSa correction")
    assert corrected.settled_cents == 700 and corrected.settlements == 2
    with pytest.raises(PaymentsConflict, match="latest settlement"):
        app.settle(2024, "GM0363", reported_spending_cents=600, settled_on=D(2025, 9, 3),
                   corrects_event_id=first_id, reason="stale")
    with pytest.raises(PaymentsRuleBroken, match="changes neither"):
        app.settle(2024, "GM0363", reported_spending_cents=700, settled_on=D(2025, 9, 3),
                   corrects_event_id=corrected.settlement_event_id, reason="same")
    history = app.history(corrected.id)
    settlements = [e for e in history if e["event_type"] == "GrantSettled"]
    assert settlements[0]["payload"]["corrects_event_id"] is None
    assert settlements[1]["payload"]["corrects_event_id"] == first_id == settlements[0]["event_id"]


def test_reclaim_is_paid_minus_settled_and_receipts_never_exceed_it(app: PaymentsApplication) -> None:
    awarded(app, amount=1000)
    app.pay_advance(2024, "GM0363", 1000, D(2024, 1, 31))
    with pytest.raises(PaymentsConflict, match="not settled"):
        app.issue_reclaim(2024, "GM0363", 300, D(2025, 9, 2))
    with pytest.raises(PaymentsConflict, match="no reclaim is outstanding"):
        app.receive_reclaim(2024, "GM0363", 1, D(2025, 9, 2))
    app.settle(2024, "GM0363", reported_spending_cents=700, settled_on=D(2025, 9, 1))
    with pytest.raises(PaymentsRuleBroken, match="€ 3.00"):
        app.issue_reclaim(2024, "GM0363", 299, D(2025, 9, 2))
    with pytest.raises(PaymentsRuleBroken, match="before the settlement"):
        app.issue_reclaim(2024, "GM0363", 300, D(2025, 8, 31))
    grant = app.issue_reclaim(2024, "GM0363", 300, D(2025, 9, 2))
    assert grant.status == "reclaim_issued" and grant.reclaim_outstanding_cents == 300
    with pytest.raises(PaymentsConflict, match="nothing to reclaim"):
        app.issue_reclaim(2024, "GM0363", 300, D(2025, 9, 2))
    with pytest.raises(PaymentsRuleBroken, match="more than was reclaimed"):
        app.receive_reclaim(2024, "GM0363", 301, D(2025, 10, 1))
    app.receive_reclaim(2024, "GM0363", 100, D(2025, 10, 1))
    grant = app.receive_reclaim(2024, "GM0363", 200, D(2025, 10, 2))
    assert grant.status == "closed" and grant.reclaim_received_cents == 300
    with pytest.raises(PaymentsConflict, match="no reclaim is outstanding"):
        app.receive_reclaim(2024, "GM0363", 1, D(2025, 10, 3))
    # after settlement, payments may not exceed the settled amount
    with pytest.raises(PaymentsRuleBroken):
        app.pay_advance(2024, "GM0363", 1, D(2025, 10, 3))


def test_correction_may_not_undo_an_issued_reclaim(app: PaymentsApplication) -> None:
    awarded(app, amount=1000)
    app.pay_advance(2024, "GM0363", 1000, D(2024, 1, 31))
    settled = app.settle(2024, "GM0363", reported_spending_cents=700, settled_on=D(2025, 9, 1))
    app.issue_reclaim(2024, "GM0363", 300, D(2025, 9, 2))
    with pytest.raises(PaymentsConflict, match="already reclaimed"):
        app.settle(2024, "GM0363", reported_spending_cents=800, settled_on=D(2025, 9, 3),
                   corrects_event_id=settled.settlement_event_id, reason="more spending found")
    # lowering the settlement is fine: the extra reclaim must then be issued, exactly
    lowered = app.settle(2024, "GM0363", reported_spending_cents=600, settled_on=D(2025, 9, 3),
                         corrects_event_id=settled.settlement_event_id, reason="ineligible costs")
    assert lowered.reclaim_to_issue_cents == 100
    with pytest.raises(PaymentsRuleBroken, match="already reclaimed"):
        app.issue_reclaim(2024, "GM0363", 400, D(2025, 9, 4))
    assert app.issue_reclaim(2024, "GM0363", 100, D(2025, 9, 4)).reclaim_issued_cents == 400


def test_settled_above_paid_leaves_a_payment_due(app: PaymentsApplication) -> None:
    awarded(app, amount=1000)
    app.pay_advance(2024, "GM0363", 400, D(2024, 1, 31))
    grant = app.settle(2024, "GM0363", reported_spending_cents=900, settled_on=D(2025, 9, 1))
    assert (grant.status, grant.payable_cents, grant.reclaim_due_cents) == ("settled", 500, 0)
    with pytest.raises(PaymentsRuleBroken, match="settled at"):
        app.pay_advance(2024, "GM0363", 501, D(2025, 9, 2))
    assert app.pay_advance(2024, "GM0363", 500, D(2025, 9, 2)).status == "closed"


def test_merger_passes_open_grants_and_keeps_history_under_both_codes(app: PaymentsApplication) -> None:
    app.set_frame(2023, FRAME, D(2022, 12, 1))
    app.set_frame(2024, FRAME, D(2023, 12, 1))
    for year in (2023, 2024):
        for code, name in (("GM0501", "Brielle"), ("GM0530", "Hellevoetsluis"), ("GM0614", "Westvoorne")):
            app.award_grant(year, code, name, 1000, D(year, 1, 15))
            app.pay_advance(year, code, 1000, D(year, 1, 31))
    app.settle(2023, "GM0614", reported_spending_cents=1000, settled_on=D(2024, 6, 1))  # closed: stays
    result = app.merge_municipality("GM0501", "GM1992", D(2023, 1, 1))
    assert result.transferred == ["grant-2023-GM0501", "grant-2024-GM0501"]
    app.merge_municipality("GM0530", "GM1992", D(2023, 1, 1))
    result = app.merge_municipality("GM0614", "GM1992", D(2023, 1, 1))
    assert (result.transferred, result.closed) == (["grant-2024-GM0614"], ["grant-2023-GM0614"])
    # the same merger again changes nothing
    max_id = app.recorder.max_notification_id()
    again = app.merge_municipality("GM0501", "GM1992", D(2023, 1, 1))
    assert (again.transferred, again.unchanged) == ([], ["grant-2023-GM0501", "grant-2024-GM0501"])
    assert app.recorder.max_notification_id() == max_id

    grant = app.grant(2024, "GM0501")  # by the old code
    assert grant.grant_id == "grant-2024-GM0501" and grant.municipality_code == "GM1992"
    assert grant.municipality_codes == ["GM0501", "GM1992"]
    history = app.history(grant.id)
    transfer = history[-1]
    assert transfer["event_type"] == "GrantTransferred"
    assert transfer["payload"] == {"grant_id": "grant-2024-GM0501", "year": 2024, "municipality_code": "GM1992",
                                   "from_municipality_code": "GM0501", "effective_on": "2023-01-01"}
    assert transfer["stream_id"] == "grant-2024-GM0501"
    # by the new code: it holds three grants of 2024, so one is addressed by the original code
    assert {g.grant_id for g in app.grants_of(2024, "GM1992")} == {
        "grant-2024-GM0501", "grant-2024-GM0530", "grant-2024-GM0614"}
    assert [g.grant_id for g in app.grants_of(2024, "GM0501")] == ["grant-2024-GM0501"]
    with pytest.raises(PaymentsConflict, match="holds 3 grants"):
        app.grant(2024, "GM1992")
    # later events carry the successor's code, but keep the stream's Kafka key, so they stay in order
    app.settle(2024, "GM0501", reported_spending_cents=600, settled_on=D(2025, 9, 1))
    assert app.grant(2024, "GM0501").partition_key == "GM0501"
    settled = [e for e in app.history(grant.id)][-1]
    assert settled["payload"]["municipality_code"] == "GM1992"
    with pytest.raises(GrantNotFound):
        app.merge_municipality("GM0999", "GM1992", D(2023, 1, 1))
    with pytest.raises(PaymentsConflict, match="another"):
        app.merge_municipality("GM0501", "GM0363", D(2023, 1, 1))


def test_single_successor_grant_is_found_by_the_new_code(app: PaymentsApplication) -> None:
    app.set_frame(2024, FRAME, D(2023, 12, 1))
    app.award_grant(2024, "GM0457", "Weesp", 1000, D(2024, 1, 15))
    app.merge_municipality("GM0457", "GM0363", D(2024, 3, 24))
    assert app.grant(2024, "GM0363").grant_id == "grant-2024-GM0457"
    assert app.grant(2024, "GM0457").grant_id == "grant-2024-GM0457"


def test_every_stored_event_keeps_its_contract_and_hash_chain(app: PaymentsApplication) -> None:
    awarded(app, amount=1000)
    app.pay_advance(2024, "GM0363", 1000, D(2024, 1, 31))
    app.settle(2024, "GM0363", reported_spending_cents=700, settled_on=D(2025, 9, 1))
    app.issue_reclaim(2024, "GM0363", 300, D(2025, 9, 2))
    app.receive_reclaim(2024, "GM0363", 300, D(2025, 9, 30))
    grant = app.grant(2024, "GM0363")
    history = app.history(grant.id)
    assert [e["event_type"] for e in history] == [
        "GrantAwarded", "AdvancePaid", "GrantSettled", "ReclaimIssued", "ReclaimReceived"]
    previous = GENESIS_HASH
    for position, envelope in enumerate(history, start=1):
        validate_envelope(envelope)  # payload matches contracts/events/grants.py, hash recomputes
        assert envelope["prev_hash"] == previous and envelope["stream_position"] == position
        assert envelope["producer"] == "payments"
        previous = envelope["hash"]
    for envelope in app.history(app.scheme(2024).id):
        validate_envelope(envelope)


def test_a_merger_into_a_code_that_merged_or_again_on_another_day_is_refused_and_changes_nothing(
    app: PaymentsApplication,
) -> None:
    """A successor that merged itself no longer exists: a grant passed to it would sit with nobody (no merger
    passes it further), so the merger is refused naming where it went. The same merger sent again with another
    effective date is not "unchanged": the first date stands and the caller hears so."""
    app.set_frame(2024, FRAME, D(2023, 12, 1))
    for code, name in (("GM0014", "Groningen"), ("GM0344", "Utrecht")):
        app.award_grant(2024, code, name, 1000, D(2024, 1, 15))
    app.merge_municipality("GM0344", "GM1992", D(2025, 4, 1))
    max_id = app.recorder.max_notification_id()
    assert conflict_of(lambda: app.merge_municipality("GM0014", "GM0344", D(2024, 7, 1))) == (
        "GM0344 merged into GM1992 effective 2025-04-01: a municipality does not merge into one that merged; "
        "merge GM0014 into GM1992",
        "successor_code",
    )
    assert conflict_of(lambda: app.merge_municipality("GM0344", "GM1992", D(2025, 5, 1))) == (
        "GM0344 merged into GM1992 effective 2025-04-01, not 2025-05-01; a merger is recorded once",
        "effective_on",
    )
    assert app.recorder.max_notification_id() == max_id
    assert app.merge_municipality("GM0344", "GM1992", D(2025, 4, 1)).unchanged == ["grant-2024-GM0344"]
    assert app.merge_municipality("GM0014", "GM1992", D(2024, 7, 1)).transferred == ["grant-2024-GM0014"]


def test_a_merger_sent_again_after_its_successor_merged_on_is_unchanged(app: PaymentsApplication) -> None:
    """A -> B, then B -> C (A's grant goes on to C), then A -> B again on its own date: a retry, 200 unchanged,
    not the refusal of a merger into a code that merged (the random histories sent it)."""
    app.set_frame(2024, FRAME, D(2023, 12, 1))
    for code, name in (("GM0014", "Groningen"), ("GM0344", "Utrecht")):
        app.award_grant(2024, code, name, 1000, D(2024, 1, 15))
    app.merge_municipality("GM0014", "GM0344", D(2024, 7, 1))
    assert app.merge_municipality("GM0344", "GM1992", D(2025, 4, 1)).transferred == [
        "grant-2024-GM0014", "grant-2024-GM0344"]
    max_id = app.recorder.max_notification_id()
    again = app.merge_municipality("GM0014", "GM0344", D(2024, 7, 1))
    assert (again.transferred, again.unchanged) == ([], ["grant-2024-GM0014"])
    assert app.recorder.max_notification_id() == max_id
    assert app.grant(2024, "GM0014").municipality_code == "GM1992"


def test_a_merger_that_would_pass_nothing_on_is_refused_and_changes_nothing(app: PaymentsApplication) -> None:
    """Found by the random histories. Payments knows a merger only by the grants it passes on; a predecessor
    whose grants are all closed passes none, so a merger answered with success stored nothing, and the merged
    code could still be awarded and post spending. It is refused, naming the closed grants, and nothing is
    stored: the caller is not told a merger was recorded when none was (docs/decisions.md)."""
    app.set_frame(2024, FRAME, D(2023, 12, 1))
    app.award_grant(2024, "GM0014", "Groningen", 1000, D(2024, 1, 15))
    app.pay_advance(2024, "GM0014", 1000, D(2024, 1, 31))
    app.merge_municipality("GM0014", "GM0599", D(2024, 1, 1))
    assert app.settle(2024, "GM0014", reported_spending_cents=1000, settled_on=D(2025, 5, 23)).closed
    max_id = app.recorder.max_notification_id()
    assert conflict_of(lambda: app.merge_municipality("GM0599", "GM0363", D(2025, 1, 1))) == (
        "every grant GM0599 holds is closed (grant-2024-GM0014): a merger that passes no grant on cannot be "
        "recorded, so none was",
        "predecessor_code",
    )
    assert app.recorder.max_notification_id() == max_id
    assert "GM0599" not in app.mergers()
    # its earlier merger still stands, and is still unchanged when sent again
    assert app.merge_municipality("GM0014", "GM0599", D(2024, 1, 1)).unchanged == ["grant-2024-GM0014"]
