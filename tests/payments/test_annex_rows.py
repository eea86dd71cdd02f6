"""The annex read row by row: every bad row's line, field and reason, exactly, and the refusal that names them.

Written for the mutation check (issue 20, docs/DEVELOPING.md "Mutation check"): ``parse_annex`` kept mutants
alive whose reasons and fields the other annex tests match only in part. No store.
"""

from __future__ import annotations

import hashlib

from contracts.csv_input import QUOTE_HINT
from contracts.identifiers import CBS_CODE_REASON
from services.payments.domain.annex import AnnexRow, parse_annex
from services.payments.domain.errors import AnnexRefused, RowError


def test_a_file_that_is_not_utf8_is_refused_at_its_line_with_its_hash() -> None:
    data = b"GM0363,Amsterdam,1.00\nGM0599,Rotterdam \xff,2.00\n"
    parsed = parse_annex(data)
    assert (parsed.rows, parsed.errors, parsed.sha256) == (
        [], [RowError(2, "_row", "is not valid UTF-8 text")], hashlib.sha256(data).hexdigest()
    )


def test_every_bad_row_is_named_with_its_line_field_and_reason() -> None:
    data = (
        '\ufeff# comment\n'
        'cbs_code,name,amount\n'
        'GM0363,Amsterdam,1.00\n'
        'GM0363,Amsterdam,2.00\n'
        'GM05,,0.00\n'
        f'GM0599,{"R" * 201},3.00\n'
        'GM0014,Gro\x07ningen,4.00\n'
        'GM0034,"Almere,Stad",5.00,6\n'
        'GM0518,"Den Haag\n'
        'code,name,amount\n'
        f'GM0344,{"U" * 200},7.00\n'
    ).encode()
    parsed = parse_annex(data)
    assert parsed.rows == [AnnexRow(3, "GM0363", "Amsterdam", 100), AnnexRow(11, "GM0344", "U" * 200, 700)]
    header = [
        RowError(10, "cbs_code", f"{CBS_CODE_REASON}, got 'code'"),
        RowError(10, "amount", "must be an amount in euros such as 725000.00, 725.000,00 or € 725.000,00 "
                 "(digits and separators only), got 'amount'"),
    ]
    assert parsed.errors == [
        RowError(4, "cbs_code", "GM0363 appears twice: also on line 3"),
        RowError(5, "cbs_code", f"{CBS_CODE_REASON}, got 'GM05'"),
        RowError(5, "name", "must not be empty"),
        RowError(5, "amount", "must be at least 0.01"),
        RowError(6, "name", "must be at most 200 characters"),
        RowError(7, "name", "must be one line without control characters (such as NUL, TAB, LF, ESC or NEL) "
                 "nor lone surrogates"),
        RowError(8, "_row", f"must have 3 fields (cbs_code,name,amount), has 4{QUOTE_HINT}"),
        RowError(9, "_row", "is not a valid CSV line (unexpected end of data)"),
        *header,  # a header is read only before the first row
    ]
    # after a broken first line a header is not a header either; with ; too many fields get no comma hint
    assert parse_annex(b'GM0518,"Den Haag\ncode,name,amount\n').errors == [
        RowError(1, "_row", "is not a valid CSV line (unexpected end of data)"),
        RowError(2, "cbs_code", f"{CBS_CODE_REASON}, got 'code'"),
        RowError(2, "amount", header[1].reason),
    ]
    # one header only, and only before the first row
    for data in (b"cbs_code,name,amount\ncode,name,amount\n", b"GM0363,Amsterdam,1.00\ncode,name,amount\n"):
        assert parse_annex(data).errors == [
            RowError(2, "cbs_code", f"{CBS_CODE_REASON}, got 'code'"), RowError(2, "amount", header[1].reason)
        ]
    assert parse_annex(b"GM0363;Amsterdam;1,00;x\n").errors == [
        RowError(1, "_row", "must have 3 fields (cbs_code;name;amount), has 4")
    ]


def test_a_refused_annex_names_every_row_and_the_file_errors() -> None:
    refused = AnnexRefused(
        "the annex is refused",
        [RowError(2, "amount", "must be at least 0.01"), RowError(2, "name", "must not be empty"),
         RowError(2, "amount", "twice")],
        ["no rows"],
    )
    assert refused.errors == {
        "line 2.amount": ["must be at least 0.01", "twice"],
        "line 2.name": ["must not be empty"],
        "_file": ["no rows"],
    }
    assert (refused.message, refused.file_errors, len(refused.rows)) == ("the annex is refused", ["no rows"], 3)
    assert RowError(2, "name", "must not be empty").as_dict() == {
        "line": 2, "field": "name", "reason": "must not be empty"
    }
    assert AnnexRefused("x", []).errors == {}
