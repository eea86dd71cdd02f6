"""The one rule of who writes a municipality's books, asked two ways: ``require_books_of`` with no other role
allowed (the API's postings, imports and reversals) and ``owns_books_of`` (the dashboard's posting forms). The
dashboard once kept a twin of the rule; the two must never answer differently."""

from __future__ import annotations

import itertools

import pytest

from services.common.auth import ROLES, Principal
from services.common.errors import Forbidden

CODES = ("GM0363", "GM0344", None)


def _allowed(caller: Principal, code: str) -> bool:
    try:
        caller.require_books_of(code)
    except Forbidden:
        return False
    return True


@pytest.mark.parametrize(("role", "own_code"), list(itertools.product(ROLES, CODES)))
def test_only_the_municipality_itself_owns_its_books_and_both_ways_of_asking_agree(
    role: str, own_code: str | None
) -> None:
    caller = Principal(role=role, municipality_code=own_code, token_id="t", subject="s")
    for code in ("GM0363", "GM0344"):
        assert caller.owns_books_of(code) == (role == "municipality" and own_code == code)
        assert _allowed(caller, code) == caller.owns_books_of(code), (role, own_code, code)
