"""The SiSa answer of one municipality and accounts year, field by field, without a store: its top-level figures
are the line of the year's own grant (G = T), or zeros and "Nee" when it has none.

Written for the mutation check (issue 20, docs/DEVELOPING.md "Mutation check"): the oracle comparison checks the
lines' money, but nothing in the fast tests read ``sisa_answer``'s own fields, a declaration's author and reason
as the view reads them back, or the booking day a journal row without ``spent_on`` counts in.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.common.year_settings import SISA_INDICATORS
from services.ledger.read_side.answers import PointInTime
from services.ledger.read_side.sisa import (
    Declaration,
    indicator_codes,
    is_late,
    sisa_answer,
    sisa_lines,
    spent_in_year,
)

INDICATORS = {2024: ("I1", "I2", "I3"), 2025: ("J1", "J2", "J3")}
DAY = date(2026, 8, 1)


def lines_of_2025() -> list[dict[str, Any]]:
    """Accounts 2025: the 2024 grant (declared final by the ministry) and 2025's own (not declared)."""
    declarations = {(2025, 2024): Declaration(True, date(2026, 7, 1), "ministry", "by letter")}
    return sisa_lines(2025, {2024: [1000, 300, 900], 2025: [2000, 400, 400]}, declarations, INDICATORS, DAY)


def test_the_top_level_figures_are_the_line_of_the_years_own_grant() -> None:
    lines = lines_of_2025()
    answer = sisa_answer("GM0363", 2025, lines, {"closed_on": date(2026, 7, 20)})
    assert answer == {
        "municipality_code": "GM0363",
        "sisa_municipality_code": "060363",
        "indicator_code": "J1",
        "indicator_setting": SISA_INDICATORS,
        "year": 2025,
        "besteding_jaar_t_cents": 400,
        "cumulatieve_bestedingen_cents": 400,
        "eindverantwoording": "Nee",
        "final_account": False,
        "year_closed": True,
        "closed_on": "2026-07-20",
        "accounts_year": 2025,
        "deadline": "2026-07-15",
        "declared": False,
        "late": True,
        "lines": lines,
    }
    assert [line["declared_by"] for line in lines] == ["ministry", None]
    assert [line["declaration_reason"] for line in lines] == ["by letter", None]


def test_an_own_line_declared_final_is_ja_at_the_top() -> None:
    declarations = {(2025, 2025): Declaration(True, date(2026, 7, 1), "municipality", None)}
    lines = sisa_lines(2025, {2025: [2000, 400, 400]}, declarations, INDICATORS, DAY)
    answer = sisa_answer("GM0344", 2025, lines, None)
    assert (answer["eindverantwoording"], answer["final_account"], answer["declared"], answer["late"]) == (
        "Ja", True, True, False
    )
    assert (answer["year_closed"], answer["closed_on"]) == (False, None)


def test_without_a_line_of_its_own_year_the_top_is_zero_and_nee_not_another_years_figures() -> None:
    declarations = {(2025, 2024): Declaration(True, date(2026, 7, 1), "municipality", None)}
    lines = sisa_lines(2025, {2024: [1000, 300, 900]}, declarations, INDICATORS, DAY)
    answer = sisa_answer("GM0363", 2025, lines, None)
    assert {k: answer[k] for k in ("indicator_code", "besteding_jaar_t_cents", "cumulatieve_bestedingen_cents",
                                   "eindverantwoording", "final_account")} == {
        "indicator_code": None, "besteding_jaar_t_cents": 0, "cumulatieve_bestedingen_cents": 0,
        "eindverantwoording": "Nee", "final_account": False,
    }
    assert [line["grant_year"] for line in answer["lines"]] == [2024]


def test_a_declaration_is_read_back_from_its_row_with_its_author_and_reason() -> None:
    row = {"final_account": 1, "declared_on": date(2026, 7, 1), "declared_by": "ministry", "reason": "by letter"}
    assert Declaration.of_row(row) == Declaration(True, date(2026, 7, 1), "ministry", "by letter")


def test_a_row_without_a_spending_day_counts_in_the_year_it_was_booked() -> None:
    assert spent_in_year({"booked_on": date(2024, 12, 31)}) == 2024
    assert spent_in_year({"booked_on": date(2025, 1, 1), "spent_on": None}) == 2025
    assert spent_in_year({"booked_on": date(2025, 1, 1), "spent_on": date(2024, 12, 31)}) == 2024


def test_each_line_states_its_figures_its_declaration_and_whether_it_is_late() -> None:
    assert lines_of_2025() == [
        {"grant_year": 2024, "indicator_codes": {"besteding": "I1", "cumulatief": "I2", "eindverantwoording": "I3"},
         "besteding_jaar_t_cents": 300, "cumulatieve_bestedingen_cents": 900, "eindverantwoording": "Ja",
         "declared": True, "declared_on": "2026-07-01", "declared_by": "ministry", "declaration_reason": "by letter",
         "late": False},
        {"grant_year": 2025, "indicator_codes": {"besteding": "J1", "cumulatief": "J2", "eindverantwoording": "J3"},
         "besteding_jaar_t_cents": 400, "cumulatieve_bestedingen_cents": 400, "eindverantwoording": "Nee",
         "declared": False, "declared_on": None, "declared_by": None, "declaration_reason": None, "late": True},
    ]


def test_a_line_declared_on_the_deadline_day_is_on_time_and_one_day_after_is_late() -> None:
    on_the_day = Declaration(True, date(2026, 7, 15), "municipality", None)
    assert is_late(2025, on_the_day, date(2027, 1, 1)) is False
    assert is_late(2025, Declaration(True, date(2026, 7, 16), "municipality", None), date(2026, 7, 16)) is True
    assert (is_late(2025, None, date(2026, 7, 15)), is_late(2025, None, date(2026, 7, 16))) == (False, True)


def test_indicator_codes_of_a_year_are_three_named_codes_or_none() -> None:
    assert indicator_codes(INDICATORS, 2024) == {"besteding": "I1", "cumulatief": "I2", "eindverantwoording": "I3"}
    assert indicator_codes({2024: ()}, 2024) is None
    with pytest.raises(ValueError):
        indicator_codes({2024: ("I1", "I2")}, 2024)


def test_a_point_in_time_describes_itself_in_iso_8601_utc() -> None:
    assert PointInTime().describe() == {"as_of": None, "known_at": None}
    point = PointInTime(date(2024, 6, 30), datetime(2024, 7, 1, 8, 30, tzinfo=UTC))
    assert point.describe() == {"as_of": "2024-06-30", "known_at": "2024-07-01T08:30:00.000000Z"}
