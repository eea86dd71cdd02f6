"""The bridging rules on an in-memory store: frame, grants, payments, accounts, reclaims."""

from __future__ import annotations

from datetime import date

import pytest

from contracts.envelope import validate_envelope
from services.bridge.application.app import BridgeApplication
from services.bridge.domain.errors import (
    BridgeConflict,
    BridgeInvalidInput,
    BridgeNotFound,
    BridgeRuleBroken,
    FileClosed,
    FrameExceeded,
    OverPayment,
)
from services.bridge.domain.frame import DEFAULT_FRAME_CENTS

TODAY = date(2024, 1, 15)
A, B, C = "NL-KVK-10000001", "NL-KVK-10000002", "NL-KVK-10000003"


@pytest.fixture
def app() -> BridgeApplication:
    application = BridgeApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    application.today = lambda: TODAY  # type: ignore[method-assign]
    return application


def area(*pairs: tuple[str, int]) -> list[dict[str, object]]:
    return [{"municipality_code": code, "inhabitants": inhabitants} for code, inhabitants in pairs]


@pytest.fixture
def registered(app: BridgeApplication) -> BridgeApplication:
    app.set_frame()
    app.register_library(library_id=A, name="Bibliotheek A", service_area=area(("GM0363", 1000)))
    app.register_library(library_id=B, name="Bibliotheek B", service_area=area(("GM0772", 300), ("GM1948", 200)))
    return app


# -- frame ----------------------------------------------------------------------------------------


def test_the_frame_defaults_to_the_arrangement(app: BridgeApplication) -> None:
    frame = app.set_frame()
    assert frame["frame_cents"] == DEFAULT_FRAME_CENTS == 270_000_000
    assert frame["rate_cents_per_inhabitant"] == "15"
    assert (frame["account_period_start"], frame["spending_deadline"], frame["account_deadline"]) == (
        date(2019, 1, 1), date(2023, 5, 1), date(2023, 9, 1),
    )
    with pytest.raises(BridgeConflict):
        app.set_frame()


def test_the_spending_deadline_moves_by_amendment(app: BridgeApplication) -> None:
    app.set_frame(spending_deadline=date(2022, 12, 31))
    amended = app.amend_frame(reason="moved to 1 May 2023", spending_deadline=date(2023, 5, 1))
    assert amended["spending_deadline"] == date(2023, 5, 1)
    events = app.frame_events()
    assert [event["event_type"] for event in events] == ["BridgeFrameSet", "BridgeFrameAmended"]
    assert events[1]["payload"]["previous_spending_deadline"] == "2022-12-31"
    assert events[1]["prev_hash"] == events[0]["hash"]
    with pytest.raises(BridgeInvalidInput) as refused:
        app.amend_frame(reason="x", account_deadline=date(2023, 4, 1))
    assert "account_deadline" in refused.value.errors


def test_commands_before_the_frame_is_set_are_refused(app: BridgeApplication) -> None:
    app.register_library(library_id=A, name="A", service_area=area(("GM0363", 10)))
    with pytest.raises(BridgeNotFound):
        app.compute_grants()


def test_the_frame_cannot_drop_below_what_is_granted(registered: BridgeApplication) -> None:
    registered.compute_grants()  # 15 × 1500 = 22 500
    with pytest.raises(FrameExceeded):
        registered.amend_frame(reason="cut", frame_cents=22_499)
    assert registered.amend_frame(reason="cut", frame_cents=22_500)["uncommitted_cents"] == 0


# -- grants ---------------------------------------------------------------------------------------


def test_computing_grants_pays_15_cents_per_inhabitant_of_the_service_area(registered: BridgeApplication) -> None:
    batch = registered.compute_grants()
    assert batch["total_cents"] == 15 * 1500
    assert {grant["library_id"]: grant["amount_cents"] for grant in batch["grants"]} == {A: 15_000, B: 7_500}
    assert registered.frame()["committed_cents"] == 22_500
    assert registered.library(B)["grant"]["basis"] == "computed"


def test_a_batch_above_the_frame_is_refused_whole(app: BridgeApplication) -> None:
    app.set_frame(frame_cents=20_000)
    app.register_library(library_id=A, name="A", service_area=area(("GM0363", 1000)))  # 15 000
    app.register_library(library_id=B, name="B", service_area=area(("GM0599", 400)))  # 6 000
    head = app.recorder.max_notification_id()
    with pytest.raises(FrameExceeded) as refused:
        app.compute_grants()
    assert "total_cents" in refused.value.errors
    assert app.recorder.max_notification_id() == head, "nothing was stored"
    assert app.library(A)["grant"] is None and app.frame()["committed_cents"] == 0


def test_a_non_whole_cent_rate_still_adds_up(app: BridgeApplication) -> None:
    app.set_frame(rate="0.5")
    for library_id, inhabitants in ((A, 1), (B, 1), (C, 1)):
        app.register_library(library_id=library_id, name=library_id, service_area=area(("GM0363", inhabitants)))
    batch = app.compute_grants()
    assert batch["total_cents"] == 2  # 1.5 rounds half to even
    assert sorted(grant["amount_cents"] for grant in batch["grants"]) == [0, 1, 1]
    assert app.frame()["committed_cents"] == 2


def test_a_single_grant_is_entered_then_corrected_with_a_reference(registered: BridgeApplication) -> None:
    entered = registered.set_grant(A, amount_cents=10_000, reason="decided by the KB")
    assert entered["grant"]["basis"] == "entered"
    with pytest.raises(BridgeConflict) as refused:
        registered.set_grant(A, amount_cents=12_000, reason="typo", corrects_event_id=None)
    assert "corrects_event_id" in refused.value.errors
    corrected = registered.set_grant(
        A, amount_cents=12_000, reason="typo", corrects_event_id=entered["grant"]["event_id"]
    )
    assert (corrected["grant"]["amount_cents"], corrected["grant"]["basis"]) == (12_000, "corrected")
    assert corrected["grant"]["event_id"] != entered["grant"]["event_id"]
    grant_events = [e for e in registered.library_events(A) if e["event_type"] == "BridgeGrantSet"]
    assert grant_events[1]["payload"]["corrects_event_id"] == entered["grant"]["event_id"]
    assert registered.frame()["committed_cents"] == 12_000
    commitments = [e["payload"] for e in registered.frame_events() if e["event_type"] == "BridgeCommitmentChanged"]
    changes = [(c["previous_committed_cents"], c["committed_cents"]) for c in commitments]
    assert changes == [(0, 10_000), (10_000, 12_000)]
    assert {c["single_grant_library_id"] for c in commitments} == {A}


def test_a_single_grant_must_fit_the_frame(app: BridgeApplication) -> None:
    app.set_frame(frame_cents=10_000)
    app.register_library(library_id=A, name="A", service_area=area(("GM0363", 100)))
    app.register_library(library_id=B, name="B", service_area=area(("GM0599", 100)))
    app.set_grant(A, amount_cents=6_000, reason="r")
    with pytest.raises(FrameExceeded) as refused:
        app.set_grant(B, amount_cents=4_001, reason="r")
    assert "amount_cents" in refused.value.errors
    app.set_grant(B, amount_cents=4_000, reason="r")
    assert app.frame()["uncommitted_cents"] == 0


# -- payments -------------------------------------------------------------------------------------


def test_payments_never_exceed_the_grant(registered: BridgeApplication) -> None:
    with pytest.raises(BridgeRuleBroken):
        registered.record_payment(A, amount_cents=1, paid_on=date(2022, 12, 1))  # no grant yet
    registered.compute_grants()
    registered.record_payment(A, amount_cents=10_000, paid_on=date(2022, 12, 1))
    with pytest.raises(OverPayment):
        registered.record_payment(A, amount_cents=5_001, paid_on=date(2022, 12, 2))
    assert registered.record_payment(A, amount_cents=5_000, paid_on=date(2022, 12, 2))["outstanding_cents"] == 0
    with pytest.raises(OverPayment):
        current = registered.library(A)["grant"]["event_id"]
        registered.set_grant(A, amount_cents=14_999, reason="lower", corrects_event_id=current)


def test_payment_dates_in_the_future_are_refused(registered: BridgeApplication) -> None:
    registered.compute_grants()
    with pytest.raises(BridgeInvalidInput) as refused:
        registered.record_payment(A, amount_cents=1, paid_on=date(2024, 1, 16))
    assert "paid_on" in refused.value.errors


def test_a_payment_batch_is_all_or_nothing(registered: BridgeApplication) -> None:
    registered.compute_grants()
    head = registered.recorder.max_notification_id()
    with pytest.raises(BridgeRuleBroken) as refused:
        registered.pay_batch(
            paid_on=date(2022, 12, 1),
            payments=[{"library_id": A, "amount_cents": 100}, {"library_id": B, "amount_cents": 7_501}],
        )
    assert "payments.1.amount_cents" in refused.value.errors
    assert registered.recorder.max_notification_id() == head
    result = registered.pay_batch(paid_on=date(2022, 12, 1))
    assert result["total_cents"] == 22_500
    assert registered.overview()["paid_cents"] == 22_500


def test_recomputing_below_what_was_paid_is_refused_whole(registered: BridgeApplication) -> None:
    registered.compute_grants()
    registered.pay_batch(paid_on=date(2022, 12, 1))
    registered.change_service_area(B, service_area=area(("GM0772", 300)), reason="Meierijstad has its own library")
    with pytest.raises(BridgeRuleBroken) as refused:
        registered.compute_grants()
    assert f"libraries.{B}" in refused.value.errors
    assert registered.library(B)["grant"]["amount_cents"] == 7_500


# -- accounts -------------------------------------------------------------------------------------


def test_an_account_after_1_september_2023_is_late_and_the_unspent_part_reclaimed(
    registered: BridgeApplication,
) -> None:
    registered.compute_grants()
    registered.pay_batch(paid_on=date(2022, 12, 1))
    on_time = registered.submit_account(A, spent_cents=15_000, submitted_on=date(2023, 9, 1))
    assert on_time["account"]["late"] is False and on_time["reclaim"] is None
    late = registered.submit_account(B, spent_cents=7_000, submitted_on=date(2023, 9, 2))
    assert late["account"]["late"] is True
    assert late["account"]["unspent_cents"] == 500
    assert late["reclaim"]["amount_cents"] == 500 and late["reclaim"]["issued_on"] == TODAY
    assert late["account"]["period_start"] == date(2019, 1, 1)
    assert late["account"]["period_end"] == date(2023, 5, 1)
    assert [lib["library_id"] for lib in registered.libraries(late=True)] == [B]
    assert [lib["library_id"] for lib in registered.libraries(late=False)] == [A]
    overview = registered.overview()
    assert (overview["accounts_late"], overview["reclaimed_cents"], overview["spent_cents"]) == (1, 500, 22_000)
    events = registered.library_events(B)
    assert [e["event_type"] for e in events][-2:] == ["BridgeAccountSubmitted", "BridgeReclaimIssued"]
    assert events[-1]["payload"]["account_event_id"] == events[-2]["event_id"]


def test_after_the_account_the_file_is_closed(registered: BridgeApplication) -> None:
    registered.compute_grants()
    registered.record_payment(A, amount_cents=10_000, paid_on=date(2022, 12, 1))
    registered.submit_account(A, spent_cents=20_000, submitted_on=date(2023, 6, 1))
    assert registered.library(A)["account"]["unspent_cents"] == 0  # spent more than paid: nothing reclaimed
    with pytest.raises(FileClosed):
        registered.record_payment(A, amount_cents=1, paid_on=date(2023, 6, 2))
    with pytest.raises(BridgeConflict):
        registered.submit_account(A, spent_cents=1, submitted_on=date(2023, 6, 2))
    with pytest.raises(BridgeRuleBroken) as refused:
        registered.compute_grants()
    assert f"libraries.{A}" in refused.value.errors


# -- register ---------------------------------------------------------------------------------------


def test_the_register_refuses_bad_entries(app: BridgeApplication) -> None:
    with pytest.raises(BridgeInvalidInput) as refused:
        app.register_library(library_id="KVK 123", name="A", service_area=area(("GM0363", 1)))
    assert "library_id" in refused.value.errors
    with pytest.raises(BridgeInvalidInput) as refused:
        app.register_library(library_id=A, name="A", service_area=area(("GM0363", 1), ("GM0363", 2)))
    assert "service_area.1.municipality_code" in refused.value.errors
    with pytest.raises(BridgeInvalidInput):
        app.register_library(library_id=A, name="A", service_area=[])
    app.register_library(library_id=A, name="A", service_area=area(("GM0363", 1)))
    with pytest.raises(BridgeConflict):
        app.register_library(library_id=A, name="A again", service_area=area(("GM0363", 1)))


def test_libraries_serving_a_municipality(registered: BridgeApplication) -> None:
    assert [lib["library_id"] for lib in registered.libraries(municipality_code="GM1948")] == [B]
    registered.change_service_area(A, service_area=area(("GM0363", 1000), ("GM1948", 10)), reason="shared")
    assert [lib["library_id"] for lib in registered.libraries(municipality_code="GM1948")] == [A, B]
    assert registered.library(A)["inhabitants"] == 1010


def test_every_event_keeps_its_contract(registered: BridgeApplication) -> None:
    registered.amend_frame(reason="r", rate="15.5")
    registered.compute_grants()
    registered.set_grant(B, amount_cents=1, reason="r", corrects_event_id=registered.library(B)["grant"]["event_id"])
    registered.pay_batch(paid_on=date(2022, 12, 1))
    registered.change_service_area(A, service_area=area(("GM0363", 1)), reason="r")
    registered.submit_account(A, spent_cents=1, submitted_on=date(2023, 10, 1))
    envelopes = registered.frame_events() + registered.library_events(A) + registered.library_events(B)
    seen = set()
    for envelope in envelopes:
        validate_envelope(envelope)
        seen.add(envelope["event_type"])
    assert seen == {
        "BridgeFrameSet", "BridgeFrameAmended", "BridgeCommitmentChanged", "LibraryRegistered",
        "LibraryServiceAreaChanged", "BridgeGrantSet", "BridgePaymentMade", "BridgeAccountSubmitted",
        "BridgeReclaimIssued",
    }
