"""``effects_of`` event by event: every row, column and refusal it gives, against a book whose answers the test
states, so a wrong sign, a dropped column or a refusal that does not fire is seen without a store or a broker.

Written for the mutation check (issue 20, docs/DEVELOPING.md "Mutation check"): the oracle comparison checks the
money through the real projection, but not the journal's other columns (a reversal's counterparty, a merger's
description, a close or a declaration), nor a second settlement's reported figure or a bridge frame's amendment,
which no oracle history happened to need.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest

from contracts.topics import BRIDGE, EXPENDITURES, GRANTS
from services.ledger.read_side.movements import (
    GrantOnDay,
    Merger,
    Original,
    Refused,
    SpentOnDay,
    account_status,
    effects_of,
    grant_on_days,
    spent_on_days,
)
from tests.ledger.events import Streams, at

A, B = "GM0363", "GM0344"
GRANT = "grant-2024-GM0363"
LIBRARY = "NL-KVK-41215098"
D = date


class Book:
    """An ``AppliedSoFar`` answering what the test gives it: totals per (kind, where), originals, closed years,
    mergers, a grant's figures per day and spending per day."""

    def __init__(
        self,
        totals: dict[tuple[str, tuple[tuple[str, Any], ...]], int] | None = None,
        originals: dict[str, Original] | None = None,
        closed: set[tuple[str, int]] | None = None,
        mergers: dict[tuple[str, int], Merger] | None = None,
        grant_days: list[GrantOnDay] | None = None,
        spent_days: list[SpentOnDay] | None = None,
    ) -> None:
        self.totals = totals or {}
        self.originals = originals or {}
        self.closed = closed or set()
        self.mergers = mergers or {}
        self.grant_days = grant_days or []
        self.spent_days = spent_days or []
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.successor_calls = 0

    def total(self, kind: str, **where: Any) -> int:
        self.asked.append((kind, where))
        return self.totals.get((kind, tuple(sorted(where.items()))), 0)

    def original(self, event_id: str) -> Original | None:
        return self.originals.get(event_id)

    def is_closed(self, municipality_code: str, year: int) -> bool:
        return (municipality_code, year) in self.closed

    def successor(self, municipality_code: str, year: int) -> Merger | None:
        # a walk along a (forged) cycle of mergers must stop: fail rather than loop, should it not
        self.successor_calls += 1
        assert self.successor_calls <= 10, "effects_of walks the mergers without end"
        return self.mergers.get((municipality_code, year))

    def grant_by_day(self, grant_id: str, municipality_code: str) -> list[GrantOnDay]:
        return self.grant_days if (grant_id, municipality_code) == (GRANT, A) else []

    def spent_by_day(self, municipality_code: str, year: int, merger_recorded_at: str) -> list[SpentOnDay]:
        return self.spent_days if (municipality_code, year) == (A, 2024) else []


def event(event_type: str, stream_id: str, key: str, recorded_at: str, **payload: Any) -> dict[str, Any]:
    return Streams("").event(event_type, stream_id, key, recorded_at, **payload)


def rows(effects: Any) -> list[tuple[int, dict[str, Any]]]:
    return list(effects.rows)


# -- grants ----------------------------------------------------------------------------------------


def settled(settled_cents: int, reported_cents: int, corrects: str | None = None) -> dict[str, Any]:
    return event(
        "GrantSettled", GRANT, A, at("2025-03-01"), grant_id=GRANT, year=2024, municipality_code=A,
        reported_spending_cents=reported_cents, settled_cents=settled_cents, settled_on="2025-03-01",
        corrects_event_id=corrects, reason="corrected" if corrects else None,
    )


def test_a_corrected_settlement_books_the_change_of_both_the_settled_and_the_reported_figure() -> None:
    """Line 1 settled, line 2 reported spending, each the change to what the grant's earlier settlement set."""
    book = Book(totals={("settled", (("grant_id", GRANT),)): 700, ("settlement_reported", (("grant_id", GRANT),)): 800})
    effects = effects_of(GRANTS.name, settled(650, 900, str(uuid.uuid4())), book)  # type: ignore[arg-type]
    common = {"municipality_code": A, "grant_id": GRANT, "year": 2024, "booked_on": D(2025, 3, 1)}
    assert rows(effects) == [
        (1, {"kind": "settled", "amount_cents": -50, **common}),
        (2, {"kind": "settlement_reported", "amount_cents": 100, **common}),
    ]
    assert ("settlement_reported", {"grant_id": GRANT}) in book.asked


def test_a_settlement_on_the_reported_figure_set_before_books_no_second_line() -> None:
    book = Book(totals={("settlement_reported", (("grant_id", GRANT),)): 900})
    effects = effects_of(GRANTS.name, settled(650, 900), book)  # type: ignore[arg-type]
    assert [(line, row["kind"], row["amount_cents"]) for line, row in rows(effects)] == [(1, "settled", 650)]


def test_a_merger_moves_spending_with_its_day_spent_and_a_description_naming_both_codes() -> None:
    book = Book(
        grant_days=[GrantOnDay("awarded", D(2024, 1, 15), 1000)],
        spent_days=[SpentOnDay("promotion", D(2024, 3, 1), 200, at("2024-03-01"), D(2024, 3, 1))],
    )
    merger = event(
        "GrantTransferred", GRANT, A, at("2024-06-01"), grant_id=GRANT, year=2024, municipality_code=B,
        from_municipality_code=A, effective_on="2024-07-01",
    )
    effects = effects_of(GRANTS.name, merger, book)  # type: ignore[arg-type]
    description = f"merger: the grant of 2024 passed from {A} to {B} on 2024-07-01"
    spent = [row for _line, row in rows(effects) if row["kind"] == "spent"]
    assert spent == [
        {"kind": "spent", "municipality_code": code, "year": 2024, "category": "promotion", "amount_cents": cents,
         "booked_on": D(2024, 7, 1), "spent_on": D(2024, 3, 1), "description": description,
         "recorded_at": at("2024-06-01")}
        for code, cents in ((A, -200), (B, 200))
    ]
    assert effects.merger == {"municipality_code": A, "year": 2024, "successor_code": B,
                              "effective_on": D(2024, 7, 1), "recorded_at": at("2024-06-01")}


# -- bridge ----------------------------------------------------------------------------------------


def bridge_frame(frame_cents: int, amended_from: int | None = None) -> dict[str, Any]:
    common = {
        "frame_cents": frame_cents, "rate_cents_per_inhabitant": "15", "account_period_start": "2022-07-01",
        "spending_deadline": "2023-06-30", "account_deadline": "2023-09-01",
    }
    if amended_from is None:
        return event("BridgeFrameSet", "bridge-frame", "bridge-frame", at("2022-07-01"), **common)
    return event(
        "BridgeFrameAmended", "bridge-frame", "bridge-frame", at("2022-08-01"), **common,
        previous_frame_cents=amended_from, previous_spending_deadline="2023-06-30",
        previous_account_deadline="2023-09-01", reason="more money",
    )


def test_an_amended_bridge_frame_books_the_change_to_the_frame_set_before() -> None:
    book = Book(totals={("bridge_frame", ()): 270_000_000})
    effects = effects_of(BRIDGE.name, bridge_frame(280_000_000, 270_000_000), book)  # type: ignore[arg-type]
    assert rows(effects) == [(1, {"kind": "bridge_frame", "amount_cents": 10_000_000, "booked_on": D(2022, 8, 1)})]
    assert effects.bridge_deadline == {"account_deadline": D(2023, 9, 1)}


def test_a_registered_library_gives_its_name_and_no_money() -> None:
    registered = event(
        "LibraryRegistered", f"library-{LIBRARY}", LIBRARY, at("2022-07-01"), library_id=LIBRARY,
        name="Bibliotheek Rotterdam", service_area=[{"municipality_code": "GM0599", "inhabitants": 650_000}],
    )
    effects = effects_of(BRIDGE.name, registered, Book())  # type: ignore[arg-type]
    assert (effects.library_name, effects.rows) == ((LIBRARY, "Bibliotheek Rotterdam"), [])


@pytest.mark.parametrize(
    ("granted_cents", "paid_cents", "status"),
    [(0, 0, "no_grant"), (-5, 0, "no_grant"), (1, 0, "not_due"), (0, 1, "not_due")],
)
def test_one_cent_granted_or_paid_expects_an_account(granted_cents: int, paid_cents: int, status: str) -> None:
    figures = {"granted_cents": granted_cents, "paid_cents": paid_cents}
    assert account_status(figures, None, D(2023, 9, 1), D(2023, 9, 1)) == status
    missing = "no_grant" if status == "no_grant" else "missing"
    assert account_status(figures, None, D(2023, 9, 1), D(2023, 9, 2)) == missing


# -- expenditures ----------------------------------------------------------------------------------

EXPENDITURE = "6f0b1c3e-8d7a-4d1e-9b1a-2f9d7c1e0a11"
POSTING = "0e8e0f3a-5b7c-4a55-8f0e-7f1d2c3b4a59"


def reversal(amount_cents: int = 300, code: str = A) -> dict[str, Any]:
    return event(
        "ExpenditureReversed", f"expenditure-{EXPENDITURE}", code, at("2024-04-01"), expenditure_id=EXPENDITURE,
        municipality_code=code, grant_year=2024, reverses_event_id=POSTING, amount_cents=amount_cents,
        category="promotion", booked_on="2024-04-01", reason="booked twice",
    )


ORIGINAL = Original(300, A, "KVK-1", "Drukkerij", "INV-7")


def test_a_reversal_copies_the_counterparty_and_reference_of_what_it_reverses_and_states_its_reason() -> None:
    effects = effects_of(EXPENDITURES.name, reversal(), Book(originals={POSTING: ORIGINAL}))  # type: ignore[arg-type]
    assert rows(effects) == [(1, {
        "kind": "spent", "municipality_code": A, "year": 2024, "category": "promotion", "amount_cents": -300,
        "booked_on": D(2024, 4, 1), "spent_on": D(2024, 4, 1), "expenditure_id": EXPENDITURE,
        "reverses_event_id": POSTING, "description": "booked twice", "counterparty_id": "KVK-1",
        "counterparty_name": "Drukkerij", "reference": "INV-7",
    })]
    assert effects.after_close is None


def test_a_reversal_of_an_event_not_applied_has_no_counterparty() -> None:
    effects = effects_of(EXPENDITURES.name, reversal(), Book())  # type: ignore[arg-type]
    (_line, row), = rows(effects)
    assert (row["amount_cents"], row["counterparty_id"], row["counterparty_name"], row["reference"]) == (
        -300, None, None, None
    )


@pytest.mark.parametrize(("amount_cents", "code"), [(301, A), (300, B)])
def test_a_reversal_that_does_not_match_what_it_reverses_is_refused(amount_cents: int, code: str) -> None:
    """A forged or broken writer: another amount, or another municipality's expenditure (each alone)."""
    with pytest.raises(Refused) as refused:
        effects_of(EXPENDITURES.name, reversal(amount_cents, code), Book(originals={POSTING: ORIGINAL}))  # type: ignore[arg-type]
    assert str(refused.value) == f"the reversal does not match the expenditure it reverses ({POSTING})"


def closed(code: str = A, year: int = 2024) -> dict[str, Any]:
    return event(
        "YearClosed", f"closing-{code}-{year}", code, at("2025-08-01"), municipality_code=code, grant_year=year,
        closed_on="2025-08-01", closed_by="auditor", final_account=True,
    )


def test_a_close_records_who_closed_which_year_on_which_day() -> None:
    effects = effects_of(EXPENDITURES.name, closed(), Book())  # type: ignore[arg-type]
    assert effects.closing == {"municipality_code": A, "year": 2024, "closed_on": D(2025, 8, 1),
                               "closed_by": "auditor", "final_account": True}
    assert effects.rows == []


def test_a_second_close_of_the_same_year_is_refused_but_not_one_of_another_year_or_municipality() -> None:
    book = Book(closed={(A, 2024)})
    with pytest.raises(Refused) as refused:
        effects_of(EXPENDITURES.name, closed(), book)  # type: ignore[arg-type]
    assert str(refused.value) == f"the year 2024 of {A} was closed before"
    assert effects_of(EXPENDITURES.name, closed(B), book).closing is not None  # type: ignore[arg-type]
    assert effects_of(EXPENDITURES.name, closed(A, 2025), book).closing is not None  # type: ignore[arg-type]


def test_a_declaration_records_its_line_who_declared_it_and_why() -> None:
    declared = event(
        "SisaLineDeclared", f"sisa-{A}-2024-2024", A, at("2025-07-01"), municipality_code=A, accounts_year=2025,
        grant_year=2024, final_account=False, declared_on="2025-07-01", declared_by="ministry", reason="by letter",
    )
    effects = effects_of(EXPENDITURES.name, declared, Book())  # type: ignore[arg-type]
    assert effects.declaration == {"municipality_code": A, "accounts_year": 2025, "grant_year": 2024,
                                   "final_account": False, "declared_on": D(2025, 7, 1),
                                   "declared_by": "ministry", "reason": "by letter"}


def posting(code: str = A, recorded_on: str = "2024-05-01") -> dict[str, Any]:
    return event(
        "ExpenditureRecorded", f"expenditure-{EXPENDITURE}", code, at(recorded_on), expenditure_id=EXPENDITURE,
        municipality_code=code, grant_year=2024, category="promotion", amount_cents=300, booked_on="2024-03-01",
        counterparty={"id": "KVK-1", "name": "Drukkerij"}, description="posters", reference="INV-7",
    )


def test_a_posting_books_its_row_with_its_counterparty_reference_and_description() -> None:
    effects = effects_of(EXPENDITURES.name, posting(), Book(closed={(B, 2024), (A, 2025)}))  # type: ignore[arg-type]
    assert rows(effects) == [(1, {
        "kind": "spent", "municipality_code": A, "year": 2024, "category": "promotion", "amount_cents": 300,
        "booked_on": D(2024, 3, 1), "spent_on": D(2024, 3, 1), "expenditure_id": EXPENDITURE,
        "counterparty_id": "KVK-1", "counterparty_name": "Drukkerij", "reference": "INV-7", "description": "posters",
    })]
    assert effects.after_close is None  # another municipality's close, or another year's, is not this one's


def test_a_posting_into_a_closed_year_is_named_and_still_counts() -> None:
    effects = effects_of(EXPENDITURES.name, posting(), Book(closed={(A, 2024)}))  # type: ignore[arg-type]
    assert effects.after_close == {"municipality_code": A, "year": 2024}
    assert [row["amount_cents"] for _line, row in rows(effects)] == [300]


C = "GM1992"


def test_a_posting_of_a_code_that_merged_twice_moves_along_the_chain_each_step_on_its_day_and_when_known() -> None:
    """A -> B effective 1 July (recorded 1 June), B -> C effective 1 September (recorded 1 October); the posting
    (booked 1 March, recorded 1 May) moves A -> B on 1 July known from 1 June, B -> C on 1 September known from
    1 October. A forged cycle back (C -> B) stops the walk instead of looping."""
    mergers = {
        (A, 2024): Merger(B, D(2024, 7, 1), at("2024-06-01")),
        (B, 2024): Merger(C, D(2024, 9, 1), at("2024-10-01")),
        (C, 2024): Merger(B, D(2024, 11, 1), at("2024-11-01")),
    }
    effects = effects_of(EXPENDITURES.name, posting(), Book(mergers=mergers))  # type: ignore[arg-type]
    moves = [(line, row["municipality_code"], row["amount_cents"], row["booked_on"], row["recorded_at"],
              row["spent_on"], row["expenditure_id"]) for line, row in rows(effects) if line > 1]
    step1 = (D(2024, 7, 1), at("2024-06-01"), D(2024, 3, 1), EXPENDITURE)
    step2 = (D(2024, 9, 1), at("2024-10-01"), D(2024, 3, 1), EXPENDITURE)
    assert moves == [(2, A, -300, *step1), (3, B, 300, *step1), (4, B, -300, *step2), (5, C, 300, *step2)]
    assert rows(effects)[3][1]["description"] == f"merger: the grant of 2024 passed from {B} to {C} on 2024-09-01"


def test_a_posting_recorded_after_the_merger_moves_known_from_its_own_recording() -> None:
    mergers = {(A, 2024): Merger(B, D(2024, 7, 1), at("2024-06-01"))}
    effects = effects_of(EXPENDITURES.name, posting(recorded_on="2024-08-01"), Book(mergers=mergers))  # type: ignore[arg-type]
    assert [row["recorded_at"] for line, row in rows(effects) if line > 1] == [at("2024-08-01")] * 2


def test_a_merger_moves_each_grant_figure_and_the_spending_with_exact_rows_and_lines() -> None:
    """Lines from 1: each figure out of the predecessor and into the successor (an award decided after the
    effective date on its own day), then the spending, known from the later of its recording and the merger's."""
    book = Book(
        grant_days=[GrantOnDay("awarded", D(2024, 1, 15), 1000), GrantOnDay("advance_paid", D(2024, 8, 1), 400)],
        spent_days=[SpentOnDay("promotion", D(2024, 3, 1), 200, at("2024-06-15"), D(2024, 3, 1))],
    )
    merger = event(
        "GrantTransferred", GRANT, A, at("2024-06-01"), grant_id=GRANT, year=2024, municipality_code=B,
        from_municipality_code=A, effective_on="2024-07-01",
    )
    effects = effects_of(GRANTS.name, merger, book)  # type: ignore[arg-type]
    grant = {"grant_id": GRANT, "year": 2024}
    assert [(line, {k: v for k, v in row.items() if k != "description"}) for line, row in rows(effects)] == [
        (1, {"kind": "awarded", "municipality_code": A, **grant, "amount_cents": -1000, "booked_on": D(2024, 7, 1)}),
        (2, {"kind": "awarded", "municipality_code": B, **grant, "amount_cents": 1000, "booked_on": D(2024, 7, 1)}),
        (3, {"kind": "advance_paid", "municipality_code": A, **grant, "amount_cents": -400,
             "booked_on": D(2024, 8, 1)}),
        (4, {"kind": "advance_paid", "municipality_code": B, **grant, "amount_cents": 400,
             "booked_on": D(2024, 8, 1)}),
        (5, {"kind": "spent", "municipality_code": A, "year": 2024, "category": "promotion", "amount_cents": -200,
             "booked_on": D(2024, 7, 1), "spent_on": D(2024, 3, 1), "recorded_at": at("2024-06-15")}),
        (6, {"kind": "spent", "municipality_code": B, "year": 2024, "category": "promotion", "amount_cents": 200,
             "booked_on": D(2024, 7, 1), "spent_on": D(2024, 3, 1), "recorded_at": at("2024-06-15")}),
    ]


def test_a_second_grant_passed_on_by_the_same_code_moves_no_spending_again() -> None:
    """A middle code of a chain passes several grants of a year on: its spending moved with the first."""
    book = Book(
        grant_days=[GrantOnDay("awarded", D(2024, 1, 15), 1000)],
        spent_days=[SpentOnDay("promotion", D(2024, 3, 1), 200, at("2024-03-01"), D(2024, 3, 1))],
        mergers={(A, 2024): Merger(B, D(2024, 7, 1), at("2024-06-01"))},
    )
    merger = event(
        "GrantTransferred", GRANT, A, at("2024-06-01"), grant_id=GRANT, year=2024, municipality_code=B,
        from_municipality_code=A, effective_on="2024-07-01",
    )
    effects = effects_of(GRANTS.name, merger, book)  # type: ignore[arg-type]
    assert [row["kind"] for _line, row in rows(effects)] == ["awarded", "awarded"]


def test_an_original_is_read_from_its_line_one_row() -> None:
    row = {"amount_cents": 300, "municipality_code": A, "counterparty_id": "KVK-1", "counterparty_name": "Drukkerij",
           "reference": "INV-7", "kind": "spent"}
    assert Original.of_row(row) == ORIGINAL
    assert Original.of_row({"amount_cents": 5}) == Original(5, None, None, None, None)


def test_spending_is_summed_per_category_booking_day_and_spending_day_and_split_at_the_mergers_recording() -> None:
    merger_at = at("2024-06-01")
    spent = [
        {"category": "promotion", "booked_on": D(2024, 3, 1), "amount_cents": 100, "recorded_at": at("2024-03-01")},
        {"category": "promotion", "booked_on": D(2024, 3, 1), "amount_cents": 50, "recorded_at": at("2024-05-01"),
         "spent_on": None},
        # recorded after the merger (read before it): apart, known from its own recording
        {"category": "promotion", "booked_on": D(2024, 3, 1), "amount_cents": 7, "recorded_at": at("2024-06-02")},
        {"category": "promotion", "booked_on": D(2024, 3, 1), "amount_cents": 3, "recorded_at": merger_at},
        # moved in by an earlier merger: booked on its effective date, spent on its own day
        {"category": "promotion", "booked_on": D(2024, 3, 1), "amount_cents": 20, "recorded_at": at("2024-02-01"),
         "spent_on": D(2024, 2, 10)},
        {"category": "library_funding", "booked_on": D(2024, 2, 1), "amount_cents": 9, "recorded_at": at("2024-02-01")},
    ]
    assert spent_on_days(spent, merger_at) == [
        SpentOnDay("library_funding", D(2024, 2, 1), 9, at("2024-02-01"), D(2024, 2, 1)),
        SpentOnDay("promotion", D(2024, 3, 1), 20, at("2024-02-01"), D(2024, 2, 10)),
        SpentOnDay("promotion", D(2024, 3, 1), 153, merger_at, D(2024, 3, 1)),
        SpentOnDay("promotion", D(2024, 3, 1), 7, at("2024-06-02"), D(2024, 3, 1)),
    ]


def test_grant_figures_are_summed_per_kind_and_day_in_the_order_of_the_kinds() -> None:
    figures = [
        {"kind": "advance_paid", "booked_on": D(2024, 2, 1), "amount_cents": 100},
        {"kind": "awarded", "booked_on": D(2024, 1, 15), "amount_cents": 1000},
        {"kind": "advance_paid", "booked_on": D(2024, 2, 1), "amount_cents": 50},
        {"kind": "advance_paid", "booked_on": D(2024, 1, 20), "amount_cents": 5},
    ]
    assert grant_on_days(figures) == [
        GrantOnDay("awarded", D(2024, 1, 15), 1000),
        GrantOnDay("advance_paid", D(2024, 1, 20), 5),
        GrantOnDay("advance_paid", D(2024, 2, 1), 150),
    ]


def test_an_award_books_the_change_to_what_was_awarded_and_names_the_municipality() -> None:
    awarded = event(
        "GrantAwarded", GRANT, A, at("2024-01-15"), grant_id=GRANT, year=2024, municipality_code=A,
        municipality_name="Amsterdam", amount_cents=1000, awarded_on="2024-01-15", basis="single",
    )
    effects = effects_of(GRANTS.name, awarded, Book(totals={("awarded", (("grant_id", GRANT),)): 400}))  # type: ignore[arg-type]
    assert rows(effects) == [(1, {"kind": "awarded", "municipality_code": A, "grant_id": GRANT, "year": 2024,
                                  "amount_cents": 600, "booked_on": D(2024, 1, 15)})]
    assert effects.municipality_name == (A, "Amsterdam")


def test_an_event_on_another_topic_or_from_another_producer_is_refused_by_name() -> None:
    """A forged message: a grants event written to the expenditures topic, or a ledger event claiming another
    producer (the seal would not verify either; this is the view's own check)."""
    with pytest.raises(Refused) as on_topic:
        effects_of("test." + EXPENDITURES.name, settled(650, 900), Book())  # type: ignore[arg-type]
    assert str(on_topic.value) == f"GrantSettled belongs on {GRANTS.name}, not on test.{EXPENDITURES.name}"
    forged = {**posting(), "producer": "payments"}
    with pytest.raises(Refused) as by_producer:
        effects_of(EXPENDITURES.name, forged, Book())  # type: ignore[arg-type]
    assert str(by_producer.value) == f"ExpenditureRecorded on {EXPENDITURES.name} must come from ledger, not payments"
    assert effects_of("test." + EXPENDITURES.name, posting(), Book()).rows  # type: ignore[arg-type]
