"""The balance CSV's money columns and its flat row, exactly (both orders are published contracts).

Written for the mutation check (issue 20, docs/DEVELOPING.md "Mutation check"): the CSV routes check these
through HTTP on a store; here ``answers.balance_columns`` and ``flat_balance`` are judged without one.
"""

from __future__ import annotations

from services.ledger.read_side.answers import balance_columns, balance_figures, flat_balance

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
