"""Values the contracts publish that code outside the payload schemas needs too, without marshmallow.

A service's domain checks its invariants against these (issue 14: the domain imports no schema library);
``contracts/events/`` builds its field validators from the same values.
"""

from __future__ import annotations

MAX_CENTS = 10**12
"""The largest amount any payload carries, in euro cents."""

CATEGORIES = ("library_funding", "promotion", "network_orchestration")
"""What a municipality may spend the grant on (``ExpenditureRecorded.category``)."""

TEXT_LIMITS = {"description": 500, "reference": 100, "counterparty.id": 100, "counterparty.name": 200}
"""Longest text of each expenditure field, in characters (the ledger refuses longer input; consumers may rely on it)."""
