"""The one amount parser (contracts/amounts.py) against an exact oracle, and the separator rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.amounts import AmountError, parse_euros
from contracts.csv_input import separator_of
from contracts.values import MAX_CENTS

cents_values = st.integers(min_value=0, max_value=MAX_CENTS)


def grouped(whole: int, separator: str) -> str:
    """The oracle's thousands grouping, by Python's own formatting (not by the parser's rules)."""
    return f"{whole:,}".replace(",", separator)


def dutch(cents: int, *, euro: str = "") -> str:
    whole, part = divmod(cents, 100)
    return f"{euro}{grouped(whole, '.')},{part:02d}"


def english(cents: int) -> str:
    whole, part = divmod(cents, 100)
    return f"{grouped(whole, ',')}.{part:02d}"


def plain(cents: int) -> str:
    whole, part = divmod(cents, 100)
    return f"{whole}.{part:02d}"


@given(cents_values, st.sampled_from(["", "€", "€ ", "€\u00a0"]))
def test_every_amount_written_dutch_english_or_plain_reads_back_to_its_cents(cents: int, euro: str) -> None:
    for text in (dutch(cents, euro=euro), english(cents), plain(cents), plain(cents).replace(".", ",")):
        assert parse_euros(text) == cents, text


@given(st.integers(min_value=0, max_value=MAX_CENTS // 100))
def test_whole_euros_read_back_with_or_without_grouping_when_not_ambiguous(whole: int) -> None:
    assert parse_euros(str(whole)) == whole * 100
    for separator in ".,":
        text = grouped(whole, separator)
        if text.count(separator) == 1:  # one group separator and three digits: either reading is possible
            with pytest.raises(AmountError, match="ambiguous"):
                parse_euros(text)
        else:
            assert parse_euros(text) == whole * 100


@given(st.integers(min_value=1, max_value=999), st.integers(min_value=0, max_value=999), st.sampled_from(".,"))
def test_one_separator_before_exactly_three_digits_is_refused_as_ambiguous(
    first: int, three: int, separator: str
) -> None:
    text = f"{first}{separator}{three:03d}"
    with pytest.raises(AmountError, match="ambiguous") as refused:
        parse_euros(text)
    assert text in refused.value.reason


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=3, max_value=6), st.sampled_from(".,"))
def test_more_than_two_decimals_is_refused(whole: int, places: int, separator: str) -> None:
    text = f"{whole:,}".replace(",", "." if separator == "," else ",") + f"{separator}{'1' * places}"
    with pytest.raises(AmountError, match="ambiguous|at most two decimals"):
        parse_euros(text)


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("725000.00", 72_500_000),
        ("725000", 72_500_000),
        ("725.000,00", 72_500_000),
        ("€ 725.000,00", 72_500_000),
        ("€725.000,00", 72_500_000),
        ("725,000.00", 72_500_000),
        ("1.234,5", 123_450),
        ("1,5", 150),
        ("0,01", 1),
        ("1.234.567", 123_456_700),
        ("1,234,567", 123_456_700),
        (" 12.34 ", 1234),
        ("0.29", 29),  # float(0.29) * 100 == 28.999999999999996: must not round down
        ("0", 0),
    ],
)
def test_accepted_forms(text: str, cents: int) -> None:
    assert parse_euros(text) == cents


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1.234", "ambiguous"),
        ("1,234", "ambiguous"),
        ("€ 725.000", "ambiguous"),
        ("1.23.456,00", "misplaced thousands separators"),
        ("12,34.56", "misplaced thousands separators"),
        ("0.123,45", "misplaced thousands separators"),
        ("1.234.56", "misplaced thousands separators"),
        ("1.234,567", "at most two decimals"),
        ("725000.001", "at most two decimals"),
        ("0,123", "at most two decimals"),
        ("1,234.567,89", "more than one decimal separator"),
        ("1.", "amount in euros"),
        (".5", "amount in euros"),
        ("-5,00", "amount in euros"),
        ("1e5", "amount in euros"),
        ("1 234,00", "amount in euros"),
        ("€", "amount in euros"),
        ("", "amount in euros"),
        ("9" * 41, "amount in euros"),
    ],
)
def test_refused_forms_say_why(text: str, reason: str) -> None:
    with pytest.raises(AmountError, match=reason):
        parse_euros(text)


@pytest.mark.parametrize(
    ("line", "separator"),
    [
        ("grant_year,category,amount", ","),
        ("grant_year;category;amount", ";"),
        ("GM0363;Amsterdam;725.000,00", ";"),
        ('GM0363,"Rotterdam; stad",725000.00', ","),
        ("GM0363;Rotterdam, stad;1,00", ";"),
        ("cbs_code", ","),
    ],
)
def test_the_first_separator_on_the_first_line_is_the_files(line: str, separator: str) -> None:
    assert separator_of(line) == separator
