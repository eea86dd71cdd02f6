"""The rounding rule: exact total, largest-remainder apportionment; the parts always sum to the total."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.bridge.domain.errors import BridgeInvalidInput
from services.bridge.domain.rounding import apportion, compute_grants, format_rate, parse_rate, total_cents

library_ids = st.from_regex(r"NL-KVK-[0-9]{8}", fullmatch=True)
service_areas = st.dictionaries(library_ids, st.integers(min_value=0, max_value=10**8), min_size=1, max_size=40)
rates = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1000"), places=6).map(
    lambda rate: parse_rate(format_rate(rate))
)


@given(service_areas, rates)
def test_parts_sum_to_the_total_for_any_service_areas(inhabitants: dict[str, int], rate: Decimal) -> None:
    total, grants = compute_grants(rate, inhabitants)
    assert sum(grants.values()) == total
    assert set(grants) == set(inhabitants)
    assert total == round(Fraction(rate) * sum(inhabitants.values()))
    weight_sum = sum(inhabitants.values())
    for library_id, weight in inhabitants.items():
        exact = Fraction(total * weight, weight_sum) if weight_sum else Fraction(0)
        assert abs(grants[library_id] - exact) < 1, "every part is within one cent of its exact share"
        assert grants[library_id] >= 0


@given(service_areas, st.integers(min_value=1, max_value=1000))
def test_with_a_whole_cent_rate_each_grant_is_rate_times_inhabitants(inhabitants: dict[str, int], rate: int) -> None:
    total, grants = compute_grants(Decimal(rate), inhabitants)
    assert grants == {library_id: rate * weight for library_id, weight in inhabitants.items()}
    assert total == rate * sum(inhabitants.values())


@given(service_areas, rates, st.randoms())
def test_the_result_does_not_depend_on_input_order(inhabitants: dict[str, int], rate: Decimal, random: Random) -> None:
    items = list(inhabitants.items())
    random.shuffle(items)
    assert compute_grants(rate, dict(items)) == compute_grants(rate, inhabitants)


def test_largest_remainders_get_the_missing_cents_and_ties_go_by_identifier() -> None:
    # 100 cents over 3 equal weights: 33⅓ each; the one missing cent goes to the smallest id.
    assert apportion(100, {"NL-KVK-3": 1, "NL-KVK-1": 1, "NL-KVK-2": 1}) == {
        "NL-KVK-1": 34, "NL-KVK-2": 33, "NL-KVK-3": 33,
    }
    # Shares 10 × 7/10 = 7, 10 × 2/10 = 2, 10 × 1/10 = 1 are whole: nothing to hand out.
    assert apportion(10, {"a": 7, "b": 2, "c": 1}) == {"a": 7, "b": 2, "c": 1}
    # 5 over 1:1:1:... shares 5 × 2/6 = 1.67, 5 × 3/6 = 2.5, 5 × 1/6 = 0.83: remainders .67, .5, .83.
    assert apportion(5, {"a": 2, "b": 3, "c": 1}) == {"a": 2, "b": 2, "c": 1}


def test_the_total_rounds_half_to_even() -> None:
    assert total_cents(Decimal("0.5"), 3) == 2  # 1.5 -> 2
    assert total_cents(Decimal("0.5"), 5) == 2  # 2.5 -> 2
    assert total_cents(Decimal("0.5"), 7) == 4  # 3.5 -> 4
    assert total_cents(Decimal("15.5"), 3) == 46  # 46.5 -> 46
    assert total_cents(Decimal("15"), 3_020_000) == 45_300_000


def test_zero_inhabitants_give_zero_grants() -> None:
    assert compute_grants(Decimal(15), {"a": 0, "b": 0}) == (0, {"a": 0, "b": 0})


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1.1234567", "NaN", "Infinity"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(BridgeInvalidInput) as refused:
        parse_rate(text)
    assert "rate_cents_per_inhabitant" in refused.value.errors


def test_rates_have_one_spelling() -> None:
    assert format_rate(parse_rate("15.500")) == "15.5"
    assert format_rate(parse_rate("15")) == "15"
    assert format_rate(parse_rate("1E1")) == "10"


def test_impossible_inputs_are_programming_errors_with_their_own_text() -> None:
    """Internal errors no caller sees (the domain never passes such values), asserted to their text so that the
    mutation check tells each guard from the others (issue 20)."""
    with pytest.raises(ValueError, match="^inhabitants must not be negative$"):
        total_cents(Decimal("15"), -1)
    assert total_cents(Decimal("15"), 0) == 0
    with pytest.raises(ValueError, match="^total must not be negative$"):
        apportion(-1, {"a": 1})
    with pytest.raises(ValueError, match="^weights must not be negative$"):
        apportion(1, {"a": 2, "b": -1})
    with pytest.raises(ValueError, match="^cannot apportion a non-zero total over zero weights$"):
        apportion(1, {"a": 0, "b": 0})
    assert apportion(0, {"a": 0, "b": 0}) == {"a": 0, "b": 0}
    assert apportion(0, {"a": 1}) == {"a": 0}
