"""A municipality's SiSa declaration of one grant line: every refusal with its reason and field, the boundary
days accepted, and the declared event's fields.

Written for the mutation check (issue 20, docs/DEVELOPING.md "Mutation check"): ``SisaLine.declare`` had no
unit test (the HTTP tests on a store declare lines), so none of its mutants was judged. No store.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.ledger.domain.errors import AlreadyDeclared, LedgerError
from services.ledger.domain.sisa import SisaLine, sisa_line_id

A = "GM0363"
TODAY = date(2025, 7, 1)


def declare(existing: SisaLine | None = None, **overrides: Any) -> SisaLine:
    fields: dict[str, Any] = {
        "municipality_code": A, "accounts_year": 2024, "grant_year": 2024, "final_account": True,
        "declared_on": date(2025, 1, 1), "declared_by": "municipality", "reason": None, "today": TODAY,
    }
    return SisaLine.declare(existing=existing, **{**fields, **overrides})


def refused(**overrides: Any) -> tuple[str, str, str | None]:
    with pytest.raises(LedgerError) as error:
        declare(**overrides)
    return type(error.value).__name__, error.value.message, error.value.field


def test_a_declaration_is_refused_with_its_reason_and_field() -> None:
    assert refused(grant_year=2025) == (
        "InvalidExpenditure", "the accounts of 2024 hold no line for the later grant year 2025", "grant_year"
    )
    assert refused(declared_on=date(2025, 7, 2)) == (
        "InvalidExpenditure", "must not be after today (2025-07-01)", "declared_on"
    )
    assert refused(declared_on=date(2024, 12, 31)) == (
        "InvalidExpenditure",
        "the SiSa account of 2024 is declared after the year ends, not on 2024-12-31",
        "declared_on",
    )
    assert refused(reason="bad\x00") == (
        "InvalidExpenditure",
        "must not contain control characters (such as NUL, BEL, ESC or NEL) nor lone surrogates",
        "reason",
    )
    assert refused(declared_by="ministry", reason="  ") == (
        "InvalidExpenditure", "the ministry declares on the municipality's behalf only with a reason", "reason"
    )
    with pytest.raises(ValueError, match="^a SiSa line is declared by municipality or ministry, not kb$"):
        declare(declared_by="kb")
    first = declare()
    with pytest.raises(AlreadyDeclared) as again:
        declare(existing=first, final_account=False)
    assert (again.value.message, again.value.field) == (
        "the SiSa line of grant year 2024 in the accounts of 2024 was declared on 2025-01-01 by the municipality",
        "grant_year",
    )


def test_a_declaration_today_of_an_earlier_grant_line_records_every_field() -> None:
    line = declare(grant_year=2023, final_account=False, declared_on=TODAY, declared_by="ministry", reason=" late ")
    assert (line.id, line.partition_key) == (sisa_line_id(A, 2024, 2023), A)
    declared = line.collect_events()[0]
    assert isinstance(declared, SisaLine.Declared)
    assert (declared.municipality_code, declared.accounts_year, declared.grant_year, declared.final_account) == (
        A, 2024, 2023, False
    )
    assert (declared.declared_on, declared.declared_by, declared.reason) == ("2025-07-01", "ministry", "late")
    assert sisa_line_id(A, 2024, 2023) not in {sisa_line_id(A, 2023, 2024), sisa_line_id("GM0344", 2024, 2023)}


def test_a_retry_is_the_same_declaration_only_with_the_same_answer_and_declarer() -> None:
    line = declare(reason="  ")
    assert line.reason is None
    assert line.same_as(True, "municipality")
    assert not line.same_as(False, "municipality")
    assert not line.same_as(True, "ministry")

