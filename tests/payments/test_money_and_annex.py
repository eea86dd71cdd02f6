"""Euros to cents exactly, and reading the annex CSV with every bad row named."""

from __future__ import annotations

import pytest

from services.payments.domain.annex import parse_annex
from services.payments.domain.money import euros_to_cents


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("725000.00", 72_500_000),
        ("725000", 72_500_000),
        ("0.01", 1),
        ("0.1", 10),
        ("1.10", 110),
        (" 12.34 ", 1234),
        ("0.29", 29),  # float(0.29) * 100 == 28.999999999999996: must not round down
        ("1.15", 115),  # float 1.15 * 100 == 114.99999999999999
        ("10000000000.00", 10**12),
        ("1,50", 150),  # Dutch (issue 15): refused before, read by contracts.amounts now
        ("€ 725.000,00", 72_500_000),
        ("10.000.000.000,00", 10**12),
    ],
)
def test_euros_to_cents_is_exact(text: str, cents: int) -> None:
    assert euros_to_cents(text) == cents


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1.234", "ambiguous"),
        ("725000.001", "at most two decimals"),
        ("-5.00", "amount in euros"),
        ("+5.00", "amount in euros"),
        ("1e5", "amount in euros"),
        ("NaN", "amount in euros"),
        ("1.23.456,00", "misplaced thousands separators"),
        ("1_000.00", "amount in euros"),
        ("", "amount in euros"),
        ("0.00", "at least 0.01"),
        ("0,00", "at least 0.01"),
        ("10000000000.01", "at most"),
    ],
)
def test_euros_to_cents_refuses(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        euros_to_cents(text)


def test_parse_annex_skips_comments_header_and_blank_lines() -> None:
    data = (
        b"# illustrative amounts, not the real annex\n"
        b"cbs_code,name,amount\n"
        b"\n"
        b"GM0363,Amsterdam,725000.00\r\n"
        b"GM0518,'s-Gravenhage,460000.5\n"
        b'GM0599,"Rotterdam, stad",1\n'
    )
    parsed = parse_annex(data)
    assert parsed.errors == []
    assert [(r.line, r.municipality_code, r.municipality_name, r.amount_cents) for r in parsed.rows] == [
        (4, "GM0363", "Amsterdam", 72_500_000),
        (5, "GM0518", "'s-Gravenhage", 46_000_050),
        (6, "GM0599", "Rotterdam, stad", 100),
    ]
    assert len(parsed.sha256) == 64


def test_parse_annex_names_every_bad_row() -> None:
    data = (
        b"GM0363,Amsterdam,725000.00\n"
        b"GM363,Nowhere,1.00\n"
        b"GM0599,Rotterdam,1.234\n"
        b"GM0363,Amsterdam again,5.00\n"
        b"GM0344,,5.00\n"
        b"GM0014,Groningen\n"
        b"GM0772,Eindhoven,-1\n"
    )
    parsed = parse_annex(data)
    found = {(e.line, e.field) for e in parsed.errors}
    assert found == {(2, "cbs_code"), (3, "amount"), (4, "cbs_code"), (5, "name"), (6, "_row"), (7, "amount")}
    assert "line 1" in next(e.reason for e in parsed.errors if e.line == 4)
    assert [r.municipality_code for r in parsed.rows] == ["GM0363"]


def test_parse_annex_refuses_non_utf8() -> None:
    parsed = parse_annex("GM0363,Amsterdam,1.00\nGM0599,Rött,1.00\n".encode("latin-1"))
    assert [(e.line, e.field) for e in parsed.errors] == [(2, "_row")]


def test_parse_annex_reads_a_dutch_file_with_semicolons() -> None:
    data = (
        "# bedragen ter illustratie\n"
        "gemeentecode;gemeente;bedrag\n"
        "GM0363;Amsterdam;€ 725.000,00\n"
        "GM0518;'s-Gravenhage;460.000,5\n"
        "GM0599;Rotterdam, stad;540000\n"
    ).encode()
    parsed = parse_annex(data)
    assert parsed.errors == []
    assert [(r.line, r.municipality_code, r.municipality_name, r.amount_cents) for r in parsed.rows] == [
        (3, "GM0363", "Amsterdam", 72_500_000),
        (4, "GM0518", "'s-Gravenhage", 46_000_050),
        (5, "GM0599", "Rotterdam, stad", 54_000_000),
    ]


def test_parse_annex_refuses_ambiguous_amounts_naming_line_and_column() -> None:
    parsed = parse_annex(b"GM0363;Amsterdam;725.000,00\nGM0599;Rotterdam;1.234\nGM0518;Den Haag;1.23.456,00\n")
    assert [(e.line, e.field) for e in parsed.errors] == [(2, "amount"), (3, "amount")]
    assert "ambiguous" in parsed.errors[0].reason and "'1.234'" in parsed.errors[0].reason
    assert "misplaced" in parsed.errors[1].reason


def test_parse_annex_with_commas_reads_a_quoted_dutch_amount_and_explains_an_unquoted_one() -> None:
    parsed = parse_annex(b'GM0363,Amsterdam,"725.000,00"\nGM0599,Rotterdam,540.000,00\n')
    assert [r.amount_cents for r in parsed.rows] == [72_500_000]
    assert [(e.line, e.field) for e in parsed.errors] == [(2, "_row")]
    assert "must be quoted" in parsed.errors[0].reason
