"""A library's payments and final account: every refusal with its exact reason and field, the boundary
amounts accepted, and the account's figures to the cent.

Written for the mutation check (issue 20, docs/DEVELOPING.md "Mutation check"): each assertion kills mutants
of ``Library.pay`` and ``Library.submit_account`` that the other bridge tests let live. In-memory store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from services.bridge.application.app import BridgeApplication
from services.bridge.domain.errors import BridgeError

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
