"""The balance CSV's money columns and its flat row, exactly (both orders are published contracts).

Written for the mutation check (issue 20, docs/DEVELOPING.md "Mutation check"): the CSV routes check these
through HTTP on a store; here ``answers.balance_columns`` and ``flat_balance`` are judged without one.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from services.ledger.read_side.answers import (
    after_close_figures,
    balance_columns,
    balance_figures,
    flat_balance,
    national_answer,
    settlement_against_books,
)
from services.ledger.read_side.movements import BridgeAccounts, latest_deadline

CATEGORY_COLUMNS = (
    "spent_library_funding_cents",
    "spent_promotion_cents",
    "spent_network_orchestration_cents",
)
BEFORE = ("awarded_cents", "advance_paid_cents")
AFTER = (
    "unspent_cents",
    "spent_beyond_award_cents",
    "settled_cents",
    "reclaim_issued_cents",
    "reclaim_received_cents",
)


def test_the_api_puts_the_categories_before_their_total_and_the_audit_after_it() -> None:
    assert balance_columns(categories_first=True) == (*BEFORE, *CATEGORY_COLUMNS, "spent_cents", *AFTER)
    assert balance_columns(categories_first=False) == (*BEFORE, "spent_cents", *CATEGORY_COLUMNS, *AFTER)


def test_a_flat_balance_has_one_cent_column_per_category_and_the_extra_fields() -> None:
    figures = balance_figures(
        {"awarded": 1000, "advance_paid": 800, "settled": 700, "reclaim_issued": 100, "reclaim_received": 40},
        {"promotion": 300, "library_funding": 1200},
    )
    assert flat_balance(figures, municipality_code="GM0363", year=2024) == {
        "municipality_code": "GM0363",
        "year": 2024,
        "awarded_cents": 1000,
        "advance_paid_cents": 800,
        "spent_cents": 1500,
        "spent_library_funding_cents": 1200,
        "spent_promotion_cents": 300,
        "spent_network_orchestration_cents": 0,
        "unspent_cents": -700,
        "spent_beyond_award_cents": 500,
        "settled_cents": 700,
        "reclaim_issued_cents": 100,
        "reclaim_received_cents": 40,
    }


def test_after_close_figures_count_and_name_the_events_in_order() -> None:
    assert after_close_figures(["e2", "e1"]) == {
        "recorded_after_close_count": 2, "recorded_after_close_event_ids": ["e1", "e2"]
    }


def test_a_settlement_is_compared_with_the_books_unless_it_passed_on() -> None:
    kinds = {"settled": 700, "settlement_reported": 800}
    assert settlement_against_books(kinds, {"promotion": 800}) == {
        "settlement_reported_spending_cents": 800, "settlement_differs_from_books": False
    }
    assert settlement_against_books(kinds, {"promotion": 799}) == {
        "settlement_reported_spending_cents": 800, "settlement_differs_from_books": True
    }
    assert settlement_against_books(kinds, {}, passed_on=True) == {
        "settlement_reported_spending_cents": None, "settlement_differs_from_books": None
    }
    assert settlement_against_books({"awarded": 1000}, {}) == {
        "settlement_reported_spending_cents": None, "settlement_differs_from_books": None
    }


def test_the_national_view_names_each_municipality() -> None:
    accounts = BridgeAccounts({}, None, date(2025, 1, 1))
    answer = national_answer(
        2024, {"GM0363": ({"awarded": 1000}, {})}, {"GM0363": "Amsterdam"}, 5000, {}, {}, 0, [],
        bridge_accounts=accounts,
    )
    assert [(row["municipality_code"], row["name"]) for row in answer["municipalities"]] == [("GM0363", "Amsterdam")]


L1, L2, L3, L4 = "NL-KVK-1", "NL-KVK-2", "NL-KVK-3", "NL-KVK-4"


def test_the_national_view_of_a_year_field_by_field() -> None:
    """Two municipalities (one settled on other figures than its books), four libraries (an account late, one on
    time against its own deadline, one missing, one with no grant) and the library funding (a merger's row of 0
    left out, one of another kind with no library kept, first): every figure worked out by hand."""
    accounts = BridgeAccounts(
        {L1: {"late": True, "submitted_on": date(2023, 9, 2), "account_deadline": date(2023, 9, 1)},
         L2: {"late": False, "submitted_on": date(2023, 8, 1), "account_deadline": date(2023, 8, 15)}},
        date(2023, 9, 1), date(2023, 10, 1),
    )
    per_library = {L1: {"bridge_grant": 500, "bridge_paid": 500, "bridge_settled": 400, "bridge_reclaim": 100},
                   L2: {"bridge_grant": 300, "bridge_paid": 300, "bridge_settled": 300},
                   L3: {"bridge_grant": 200}, L4: {}}
    books = {
        "GM0363": ({"awarded": 1000, "advance_paid": 1000, "settled": 700, "settlement_reported": 800},
                   {"promotion": 700}),
        "GM0344": ({"awarded": 500, "advance_paid": 500, "settled": 500, "settlement_reported": 500},
                   {"library_funding": 500}),
    }
    answer = national_answer(
        2024, books, {"GM0363": "Amsterdam", "GM0344": "Utrecht"}, 2000, per_library,
        {L1: "Bieb 1", L2: "Bieb 2", L3: "Bieb 3", L4: "Bieb 4"}, 1500,
        [(L2, 250), (None, 0), (L1, 100), (None, 5)], None, bridge_accounts=accounts,
    )
    zero = {"library_funding": 0, "promotion": 0, "network_orchestration": 0}

    def municipality(code: str, name: str, cents: int, category: str, settled: int, reported: int) -> dict[str, Any]:
        return {
            "municipality_code": code, "name": name, "awarded_cents": cents, "advance_paid_cents": cents,
            "spent_by_category": {**zero, category: settled}, "spent_cents": settled,
            "unspent_cents": cents - settled, "spent_beyond_award_cents": 0, "settled_cents": settled,
            "reclaim_issued_cents": 0, "reclaim_received_cents": 0,
            "settlement_reported_spending_cents": reported, "settlement_differs_from_books": reported != settled,
            "sisa": None,
        }

    def library(library_id: str, figures: tuple[int, int, int, int], status: str, submitted: str | None,
                deadline: str | None) -> dict[str, Any]:
        granted, paid, settled, reclaimed = figures
        return {"library_id": library_id, "name": f"Bieb {library_id[-1]}", "granted_cents": granted,
                "paid_cents": paid, "settled_cents": settled, "reclaim_issued_cents": reclaimed,
                "account_status": status, "account_submitted_on": submitted, "account_deadline": deadline}

    assert answer == {
        "year": 2024,
        "frame_cents": 2000,
        "awarded_within_frame": True,
        "frame_unawarded_cents": 500,
        "settlements_differing_from_books": 1,
        "sisa_late": 0,
        "municipalities": [
            municipality("GM0344", "Utrecht", 500, "library_funding", 500, 500),
            municipality("GM0363", "Amsterdam", 1000, "promotion", 700, 800),
        ],
        "totals": {
            "awarded_cents": 1500, "advance_paid_cents": 1500,
            "spent_by_category": {"library_funding": 500, "promotion": 700, "network_orchestration": 0},
            "spent_cents": 1200, "unspent_cents": 300, "spent_beyond_award_cents": 0, "settled_cents": 1200,
            "reclaim_issued_cents": 0, "reclaim_received_cents": 0,
        },
        "bridge": {
            "frame_cents": 1500,
            "frame_ungranted_cents": 500,
            "account_deadline": "2023-09-01",
            "accounts_late": 1,
            "accounts_missing": 1,
            "libraries": [
                library(L1, (500, 500, 400, 100), "late", "2023-09-02", "2023-09-01"),
                library(L2, (300, 300, 300, 0), "on_time", "2023-08-01", "2023-08-15"),
                library(L3, (200, 0, 0, 0), "missing", None, "2023-09-01"),
                library(L4, (0, 0, 0, 0), "no_grant", None, None),
            ],
            "totals": {"granted_cents": 1000, "paid_cents": 800, "settled_cents": 700, "reclaim_issued_cents": 100},
        },
        "library_funding_received": [
            {"library_id": None, "name": None, "received_cents": 5},
            {"library_id": L1, "name": "Bieb 1", "received_cents": 100},
            {"library_id": L2, "name": "Bieb 2", "received_cents": 250},
        ],
    }


def test_the_account_deadline_in_force_is_that_of_the_frame_event_recorded_last() -> None:
    deadlines = [
        {"account_deadline": date(2023, 9, 1), "recorded_at": "2022-07-01T12:00:00.000000Z"},
        {"account_deadline": date(2023, 12, 1), "recorded_at": "2023-02-01T12:00:00.000000Z"},
        {"account_deadline": date(2023, 10, 1), "recorded_at": "2022-08-01T12:00:00.000000Z"},
    ]
    assert latest_deadline(deadlines) == date(2023, 12, 1)
    assert latest_deadline([]) is None
