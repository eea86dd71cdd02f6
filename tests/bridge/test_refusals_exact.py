"""A library's payments and final account: every refusal with its exact reason and field, the boundary
amounts accepted, and the account's figures to the cent.

Written for the mutation check (issue 20, docs/DEVELOPING.md "Mutation check"): each assertion kills mutants
of ``Library.pay`` and ``Library.submit_account`` that the other bridge tests let live. In-memory store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest

from contracts.identifiers import CBS_CODE_REASON, ORG_ID_REASON
from services.bridge.application.app import BridgeApplication
from services.bridge.domain.errors import BridgeError
from services.bridge.domain.library import MAX_INHABITANTS, Library, check_library_id, normalise_service_area
from services.bridge.domain.rounding import parse_rate

TODAY = date(2024, 1, 15)
A = "NL-KVK-10000001"


@pytest.fixture
def bridge() -> BridgeApplication:
    application = BridgeApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    application.today = lambda: TODAY  # type: ignore[method-assign]
    application.set_frame()
    application.register_library(
        library_id=A, name="Bibliotheek A", service_area=[{"municipality_code": "GM0363", "inhabitants": 1000}]
    )
    return application


def refused(command: Callable[[], object]) -> tuple[str, str, str | None]:
    with pytest.raises(BridgeError) as error:
        command()
    return type(error.value).__name__, error.value.message, error.value.field


def test_payments_are_refused_with_their_reason_and_field(bridge: BridgeApplication) -> None:
    day = date(2022, 12, 1)
    assert refused(lambda: bridge.record_payment(A, amount_cents=1, paid_on=day)) == (
        "BridgeRuleBroken", f"{A} has no grant yet", "library_id"
    )
    bridge.compute_grants()  # 1000 inhabitants at 15 cents: 15 000 cents
    for amount in (0, True, 1.5):
        assert refused(lambda: bridge.record_payment(A, amount_cents=amount, paid_on=day)) == (  # noqa: B023
            "BridgeInvalidInput", "must be a whole number of cents, at least 1", "amount_cents"
        )
    assert bridge.record_payment(A, amount_cents=1, paid_on=day)["paid_cents"] == 1
    assert refused(lambda: bridge.record_payment(A, amount_cents=15_000, paid_on=day)) == (
        "OverPayment", f"paying 15000 cents would take {A} to 15001 cents, above its grant of 15000", "amount_cents"
    )
    paid = bridge.record_payment(A, amount_cents=14_999, paid_on=day)
    assert (paid["paid_cents"], paid["outstanding_cents"]) == (15_000, 0)
    assert [(p["amount_cents"], p["paid_on"]) for p in paid["payments"]] == [(1, day), (14_999, day)]


def test_an_account_is_refused_with_its_reason_and_field_and_an_account_of_nothing_reclaims_all(
    bridge: BridgeApplication,
) -> None:
    assert refused(lambda: bridge.submit_account(A, spent_cents=0, submitted_on=date(2023, 6, 1))) == (
        "BridgeRuleBroken", f"{A} has no grant to account for", "library_id"
    )
    bridge.compute_grants()
    bridge.record_payment(A, amount_cents=10_000, paid_on=date(2022, 12, 1))
    for spent in (-1, True, 0.5):
        assert refused(lambda: bridge.submit_account(A, spent_cents=spent, submitted_on=date(2023, 6, 1))) == (  # noqa: B023
            "BridgeInvalidInput", "must be a whole number of cents, not negative", "spent_cents"
        )
    assert refused(lambda: bridge.submit_account(A, spent_cents=0, submitted_on=date(2018, 12, 31))) == (
        "BridgeInvalidInput", "before the account period starts", "submitted_on"
    )
    account = bridge.submit_account(A, spent_cents=0, submitted_on=date(2019, 1, 1))
    assert (account["account"]["spent_cents"], account["account"]["unspent_cents"]) == (0, 10_000)
    submitted = bridge.library_events(A)[-2]["payload"]
    assert (submitted["grant_cents"], submitted["paid_cents"], submitted["submitted_on"]) == (
        15_000, 10_000, "2019-01-01"
    )
    assert (account["reclaim"]["amount_cents"], account["reclaim"]["issued_on"]) == (10_000, TODAY)
    assert refused(lambda: bridge.record_payment(A, amount_cents=1, paid_on=date(2023, 6, 2))) == (
        "FileClosed", f"{A} has submitted its final account; no more payments", "paid_on"
    )
    assert refused(lambda: bridge.submit_account(A, spent_cents=1, submitted_on=date(2023, 6, 2))) == (
        "BridgeConflict", f"{A} already submitted its final account", "library_id"
    )


def test_an_account_of_exactly_what_was_paid_reclaims_nothing(bridge: BridgeApplication) -> None:
    bridge.compute_grants()
    bridge.record_payment(A, amount_cents=10_000, paid_on=date(2022, 12, 1))
    account = bridge.submit_account(A, spent_cents=10_000, submitted_on=date(2023, 6, 1))
    assert (account["account"]["unspent_cents"], account["reclaim"]) == (0, None)
    assert [e["event_type"] for e in bridge.library_events(A)][-1] == "BridgeAccountSubmitted"


def test_an_account_one_cent_short_of_what_was_paid_reclaims_that_cent(bridge: BridgeApplication) -> None:
    bridge.compute_grants()
    bridge.record_payment(A, amount_cents=10_000, paid_on=date(2022, 12, 1))
    account = bridge.submit_account(A, spent_cents=9_999, submitted_on=date(2023, 6, 1))
    assert (account["account"]["unspent_cents"], account["reclaim"]["amount_cents"]) == (1, 1)


# -- the register, service areas and grants, on the aggregate (issue 20, the mutation check's survivors) ------

AREA = [{"municipality_code": "GM0599", "inhabitants": 7}, {"municipality_code": "GM0363", "inhabitants": 5}]
SORTED_AREA = [{"municipality_code": "GM0363", "inhabitants": 5}, {"municipality_code": "GM0599", "inhabitants": 7}]


def payload(event: object) -> dict[str, object]:
    """An event's payload fields: what the contract publishes, without the chain's and eventsourcing's."""
    chain = {"originator_id", "originator_version", "timestamp", "originator_topic", "event_id", "stream_id",
             "partition_key", "producer", "occurred_at", "prev_hash", "hash"}
    return {name: value for name, value in vars(event).items() if name not in chain}


def new_library(area: list[dict[str, object]] | None = None) -> Library:
    library = Library.register(library_id=A, name="Bibliotheek A", service_area=area or AREA)
    library.collect_events()
    return library


def test_a_library_id_is_refused_with_the_identifier_reason_and_the_given_field() -> None:
    for bad in ("NL-KVK", "nl-kvk-12345678", "NL-KVK-1 2", "", 12345678, None, f"{A}\n"):
        assert refused(lambda: check_library_id(bad)) == ("BridgeInvalidInput", ORG_ID_REASON, "library_id")  # type: ignore[arg-type]  # noqa: B023
    assert refused(lambda: check_library_id("x", "payments.0.library_id")) == (
        "BridgeInvalidInput", ORG_ID_REASON, "payments.0.library_id"
    )
    assert check_library_id(A) == A


def test_a_service_area_is_checked_entry_by_entry_and_stored_sorted() -> None:
    assert normalise_service_area(AREA) == SORTED_AREA
    boundaries = [{"municipality_code": "GM0363", "inhabitants": 0},
                  {"municipality_code": "GM0014", "inhabitants": MAX_INHABITANTS}]
    assert normalise_service_area(boundaries) == [boundaries[1], boundaries[0]]
    ok = {"municipality_code": "GM0363", "inhabitants": 5}
    cases: list[tuple[list[dict[str, object]], str, str]] = [
        ([ok, {"municipality_code": "GM036", "inhabitants": 1}], CBS_CODE_REASON, "area.1.municipality_code"),
        ([ok, {"inhabitants": 1}], CBS_CODE_REASON, "area.1.municipality_code"),
        ([ok, {"municipality_code": 363, "inhabitants": 1}], CBS_CODE_REASON, "area.1.municipality_code"),
        ([ok, dict(ok)], "GM0363 appears twice", "area.1.municipality_code"),
        ([{"municipality_code": "GM0363", "inhabitants": -1}], f"must be a whole number from 0 to {MAX_INHABITANTS}",
         "area.0.inhabitants"),
        ([{"municipality_code": "GM0363", "inhabitants": MAX_INHABITANTS + 1}],
         f"must be a whole number from 0 to {MAX_INHABITANTS}", "area.0.inhabitants"),
        ([{"municipality_code": "GM0363", "inhabitants": True}], f"must be a whole number from 0 to {MAX_INHABITANTS}",
         "area.0.inhabitants"),
        ([{"municipality_code": "GM0363", "inhabitants": 1.0}], f"must be a whole number from 0 to {MAX_INHABITANTS}",
         "area.0.inhabitants"),
        ([{"municipality_code": "GM0363"}], f"must be a whole number from 0 to {MAX_INHABITANTS}",
         "area.0.inhabitants"),
        ([], "a library serves at least one municipality", "area"),
    ]
    for entries, reason, field in cases:
        assert refused(lambda: normalise_service_area(entries, "area")) == ("BridgeInvalidInput", reason, field)  # noqa: B023
    assert refused(lambda: normalise_service_area([])) == (
        "BridgeInvalidInput", "a library serves at least one municipality", "service_area"
    )
    assert refused(lambda: normalise_service_area([{"municipality_code": "GM0363", "inhabitants": -1}])) == (
        "BridgeInvalidInput", f"must be a whole number from 0 to {MAX_INHABITANTS}", "service_area.0.inhabitants"
    )


def test_a_library_is_registered_with_its_name_trimmed_and_its_area_sorted_or_refused_naming_the_field() -> None:
    library = Library.register(library_id=A, name="  Bibliotheek A  ", service_area=AREA)
    (registered,) = library.collect_events()
    assert type(registered).__name__ == "Registered"
    assert (registered.stream_id, registered.partition_key) == (f"library-{A}", A)
    assert payload(registered) == {"library_id": A, "name": "Bibliotheek A", "service_area": SORTED_AREA}
    assert library.snapshot() == {
        "library_id": A, "name": "Bibliotheek A", "service_area": SORTED_AREA, "inhabitants": 12, "grant": None,
        "paid_cents": 0, "outstanding_cents": 0, "payments": [], "account": None, "reclaim": None, "version": 1,
    }
    assert Library.register(library_id=A, name="n" * 200, service_area=AREA).name == "n" * 200
    cases: list[tuple[object, object, str, str, str]] = [
        ("NL-KVK", "Bibliotheek", "BridgeInvalidInput", ORG_ID_REASON, "library_id"),
        (A, "", "BridgeInvalidInput", "must not be empty", "name"),
        (A, "   ", "BridgeInvalidInput", "must not be empty", "name"),
        (A, None, "BridgeInvalidInput", "must not be empty", "name"),
        (A, "n" * 201, "BridgeInvalidInput", "at most 200 characters", "name"),
    ]
    for library_id, name, kind, reason, field in cases:
        assert refused(lambda: Library.register(library_id=library_id, name=name, service_area=AREA)) == (  # type: ignore[arg-type]  # noqa: B023
            kind, reason, field
        )
    assert refused(lambda: Library.register(library_id=A, name="Bibliotheek", service_area=[])) == (
        "BridgeInvalidInput", "a library serves at least one municipality", "service_area"
    )


def test_a_service_area_change_needs_a_reason_and_a_new_area_and_records_both() -> None:
    library = new_library()
    for reason in ("", "  ", None):
        assert refused(lambda: library.change_service_area(SORTED_AREA, reason=reason)) == (  # type: ignore[arg-type]  # noqa: B023
            "BridgeInvalidInput", "a change of service area needs a reason", "reason"
        )
    assert refused(lambda: library.change_service_area(list(reversed(SORTED_AREA)), reason="moved")) == (
        "BridgeRuleBroken", "the service area is unchanged", "service_area"
    )
    assert refused(lambda: library.change_service_area([], reason="moved")) == (
        "BridgeInvalidInput", "a library serves at least one municipality", "service_area"
    )
    assert library.collect_events() == []
    library.change_service_area([{"municipality_code": "GM0599", "inhabitants": 8}, SORTED_AREA[0]], reason=" moved ")
    (changed,) = library.collect_events()
    assert type(changed).__name__ == "ServiceAreaChanged"
    assert payload(changed) == {
        "library_id": A, "reason": "moved",
        "service_area": [
            {"municipality_code": "GM0363", "inhabitants": 5}, {"municipality_code": "GM0599", "inhabitants": 8}
        ],
    }
    assert (library.inhabitants, library.snapshot()["version"]) == (13, 2)


def test_a_single_grant_is_entered_then_corrected_by_reference_or_refused_naming_the_field() -> None:
    library = new_library()
    for reason in ("", " ", None):
        assert refused(lambda: library.set_single_grant(100, reason=reason, corrects_event_id=None)) == (  # type: ignore[arg-type]  # noqa: B023
            "BridgeInvalidInput", "entering or correcting a grant needs a reason", "reason"
        )
    assert refused(lambda: library.set_single_grant(100, reason="r", corrects_event_id="e-1")) == (
        "BridgeConflict", f"{A} has no grant yet; there is nothing to correct", "corrects_event_id"
    )
    library.set_single_grant(100, reason=" first ", corrects_event_id=None)
    (entered,) = library.collect_events()
    assert payload(entered) == {
        "library_id": A, "amount_cents": 100, "inhabitants": 12, "basis": "entered", "batch_id": None,
        "rate_cents_per_inhabitant": None, "corrects_event_id": None, "reason": "first",
    }
    assert library.snapshot()["grant"] == {"amount_cents": 100, "event_id": entered.event_id, "basis": "entered"}
    assert library.snapshot()["outstanding_cents"] == 100
    for wrong in (None, "e-1"):
        assert refused(lambda: library.set_single_grant(90, reason="r", corrects_event_id=wrong)) == (  # noqa: B023
            "BridgeConflict",
            f"the current grant of {A} is event {entered.event_id}; a correction must reference it",
            "corrects_event_id",
        )
    library.set_single_grant(90, reason="lower", corrects_event_id=entered.event_id)
    (corrected,) = library.collect_events()
    assert payload(corrected) == {
        "library_id": A, "amount_cents": 90, "inhabitants": 12, "basis": "corrected", "batch_id": None,
        "rate_cents_per_inhabitant": None, "corrects_event_id": entered.event_id, "reason": "lower",
    }
    library.set_computed_grant(180, batch_id="batch-1", rate=Decimal("15.00"))
    (computed,) = library.collect_events()
    assert payload(computed) == {
        "library_id": A, "amount_cents": 180, "inhabitants": 12, "basis": "computed", "batch_id": "batch-1",
        "rate_cents_per_inhabitant": "15", "corrects_event_id": corrected.event_id, "reason": None,
    }


def test_a_grant_change_is_refused_below_what_was_paid_and_after_the_account_naming_the_field() -> None:
    library = new_library()
    for amount in (-1, True, 1.5, "5"):
        assert refused(lambda: library.check_grant_change(amount)) == (  # type: ignore[arg-type]  # noqa: B023
            "BridgeInvalidInput", "must be a whole number of cents, not negative", "amount_cents"
        )
    assert refused(lambda: library.check_grant_change(-1, "libraries.0.amount_cents")) == (
        "BridgeInvalidInput", "must be a whole number of cents, not negative", "libraries.0.amount_cents"
    )
    library.check_grant_change(0)  # a grant of nothing is a grant
    library.set_single_grant(100, reason="r", corrects_event_id=None)
    library.collect_events()
    library.pay(60, paid_on=date(2022, 12, 1), payment_batch_id="payments-1")
    (paid,) = library.collect_events()
    assert payload(paid) == {
        "library_id": A, "amount_cents": 60, "paid_on": "2022-12-01", "payment_batch_id": "payments-1"
    }
    library.check_grant_change(60)  # down to what was paid
    assert refused(lambda: library.check_grant_change(59)) == (
        "OverPayment", f"{A} was already paid 60 cents; its grant cannot drop to 59", "amount_cents"
    )
    assert refused(lambda: library.check_grant_change(59, "grant")) == (
        "OverPayment", f"{A} was already paid 60 cents; its grant cannot drop to 59", "grant"
    )
    frame = BridgeApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    frame.set_frame()
    library.submit_account(spent_cents=60, submitted_on=date(2023, 6, 1), frame=frame._frame(), issued_on=TODAY)
    assert refused(lambda: library.check_grant_change(100, "grant")) == (
        "FileClosed", f"{A} has submitted its final account; its grant is closed", "grant"
    )


def test_a_rate_is_a_positive_decimal_of_at_most_six_places_or_refused_naming_the_field() -> None:
    assert parse_rate(" 15.123456 ") == Decimal("15.123456")
    assert parse_rate(Decimal("0.000001")) == Decimal("0.000001")
    field = "rate_cents_per_inhabitant"
    cases: list[tuple[object, str]] = [
        ("fifteen", "not a decimal number: 'fifteen'"),
        ("", "not a decimal number: ''"),
        ("0", "must be a positive number of cents"),
        ("-1", "must be a positive number of cents"),
        ("Infinity", "must be a positive number of cents"),
        ("NaN", "must be a positive number of cents"),
        ("15.1234567", "at most 6 decimals"),
    ]
    for text, reason in cases:
        assert refused(lambda: parse_rate(text)) == ("BridgeInvalidInput", reason, field)  # type: ignore[arg-type]  # noqa: B023
    for text, reason in (("x", "not a decimal number: 'x'"), ("0", "must be a positive number of cents"),
                         ("1.0000001", "at most 6 decimals")):
        assert refused(lambda: parse_rate(text, field="rate")) == ("BridgeInvalidInput", reason, "rate")  # noqa: B023
