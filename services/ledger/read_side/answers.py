"""The answers' shapes, without SQL: one for the live queries (``sql/queries.py``) and the audit replay.

Both compute sums by kind and category and hand them here, so the two answers can be compared field
by field and neither can give a figure the other does not.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from contracts.canonical import format_utc
from contracts.events.expenditures import CATEGORIES
from services.ledger.read_side.movements import BridgeAccounts, library_bridge_rows
from services.ledger.read_side.sisa import sisa_status


@dataclass(frozen=True)
class PointInTime:
    as_of: date | None = None
    known_at: datetime | None = None

    def day(self, today: date) -> date:
        """The day deadlines are judged on: ``as_of``, else the day of ``known_at``, else today."""
        if self.as_of is not None:
            return self.as_of
        return self.known_at.date() if self.known_at is not None else today

    def describe(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "known_at": format_utc(self.known_at) if self.known_at else None,
        }


def balance_figures(municipality: dict[str, int], categories: dict[str, int]) -> dict[str, Any]:
    """The money of a balance from its sums by kind and spent by category: one shape for the live
    queries and the audit replay."""
    awarded = municipality.get("awarded", 0)
    paid = municipality.get("advance_paid", 0)
    spent = sum(categories.values())
    return {
        "awarded_cents": awarded,
        "advance_paid_cents": paid,
        "spent_by_category": {c: categories.get(c, 0) for c in CATEGORIES},
        "spent_cents": spent,
        "unspent_cents": paid - spent,
        "spent_beyond_award_cents": max(spent - awarded, 0),
        "settled_cents": municipality.get("settled", 0),
        "reclaim_issued_cents": municipality.get("reclaim_issued", 0),
        "reclaim_received_cents": municipality.get("reclaim_received", 0),
    }


def after_close_figures(event_ids: Iterable[str]) -> dict[str, Any]:
    """The postings and reversals of a balance's year recorded after its close (``Effects.after_close``),
    counted and named; their money is in the figures, as every event's."""
    ids = sorted(event_ids)
    return {"recorded_after_close_count": len(ids), "recorded_after_close_event_ids": ids}


def settlement_against_books(
    kinds: dict[str, int], categories: dict[str, int], *, passed_on: bool = False
) -> dict[str, Any]:
    """A settlement's reported spending against the ledger's own spending figure (null before settling).

    The ledger compares it itself, whatever figure the settlement request named, so a settlement
    that differs from the books is flagged even when its client never asked for the proposal.
    ``passed_on``: a merger in effect passed the municipality's grants of the year to a successor, and
    their settlements with them: it holds none (null), although the rows that moved them out leave it
    ``settled`` rows summing to 0."""
    if passed_on or "settled" not in kinds:
        return {"settlement_reported_spending_cents": None, "settlement_differs_from_books": None}
    reported = kinds.get("settlement_reported", 0)
    return {
        "settlement_reported_spending_cents": reported,
        "settlement_differs_from_books": reported != sum(categories.values()),
    }


def balance_columns(*, categories_first: bool) -> tuple[str, ...]:
    """The money columns of a balance in a CSV, from the one list of figures above.

    Two published CSVs order them differently (the API's balances put the categories before their
    total, the audit's balances.csv after it); both orders are part of their contracts and stay.
    """
    by_category = tuple(f"spent_{c}_cents" for c in CATEGORIES)
    spent = (*by_category, "spent_cents") if categories_first else ("spent_cents", *by_category)
    return (
        "awarded_cents",
        "advance_paid_cents",
        *spent,
        "unspent_cents",
        "spent_beyond_award_cents",
        "settled_cents",
        "reclaim_issued_cents",
        "reclaim_received_cents",
    )


def flat_balance(balance: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A balance as one CSV row: ``spent_by_category`` becomes ``spent_<category>_cents`` columns."""
    flat = {**extra, **{k: v for k, v in balance.items() if k != "spent_by_category"}}
    for category, cents in balance["spent_by_category"].items():
        flat[f"spent_{category}_cents"] = cents
    return flat


YearTotals = dict[str, tuple[dict[str, int], dict[str, int]]]
"""municipality code -> (sums by kind, spent by category) of one year."""


def national_answer(
    year: int,
    books: YearTotals,
    municipality_names: dict[str, str],
    frame_cents: int,
    per_library: dict[str, dict[str, int]],
    library_names: dict[str, str],
    bridge_frame_cents: int,
    funding: list[tuple[str | None, int]],
    sisa: dict[str, list[dict[str, Any]]] | None = None,
    *,
    bridge_accounts: BridgeAccounts,
    passed_on: Collection[str] = frozenset(),
) -> dict[str, Any]:
    """The national view of a year, from its sums: one shape for the live queries and the audit replay,
    so the two answers can be compared field by field. ``funding``: (library id, cents) pairs;
    ``sisa``: per municipality the lines of its SiSa account of the year (``sisa.sisa_lines``);
    ``bridge_accounts``: the libraries' final accounts of the bridging subsidy and its deadline;
    ``passed_on``: the municipalities whose grants of the year a merger passed on by the point (in effect
    and known), which hold no settlement of the year (``settlement_against_books``).

    A municipality is listed when it has figures of the year or a SiSa account of the year with a line
    (an earlier grant not yet declared final): its account may be late with nothing booked in the year,
    and ``sisa_late`` counts the rows, so BZK finds it in the list (issue 20's oracle found it missing)."""
    statuses = {code: sisa_status(year, lines) for code, lines in (sisa or {}).items()}
    accounting = {code for code, lines in (sisa or {}).items() if lines}
    rows = []
    totals_kinds: dict[str, int] = {}
    totals_categories: dict[str, int] = {}
    for code in sorted(books.keys() | accounting):
        kinds, categories = books.get(code, ({}, {}))
        rows.append(
            {
                "municipality_code": code,
                "name": municipality_names.get(code),
                **balance_figures(kinds, categories),
                **settlement_against_books(kinds, categories, passed_on=code in passed_on),
                "sisa": statuses.get(code),
            }
        )
        for k, v in kinds.items():
            totals_kinds[k] = totals_kinds.get(k, 0) + v
        for k, v in categories.items():
            totals_categories[k] = totals_categories.get(k, 0) + v
    totals = balance_figures(totals_kinds, totals_categories)
    # Spending beyond one municipality's award is not made good by another's unspent money: the total
    # of the column is the sum of its rows (issue 20's oracle found the netted figure).
    totals["spent_beyond_award_cents"] = sum(row["spent_beyond_award_cents"] for row in rows)
    received = [
        {
            "library_id": library_id,
            "name": library_names.get(library_id) if library_id is not None else None,
            "received_cents": cents,
        }
        for library_id, cents in sorted(funding, key=lambda item: item[0] or "")
        # spending a merger moved carries no library: its rows cancel out in a year's national sum
        if library_id is not None or cents
    ]
    return {
        "year": year,
        "frame_cents": frame_cents,
        "awarded_within_frame": totals["awarded_cents"] <= frame_cents,
        "frame_unawarded_cents": frame_cents - totals["awarded_cents"],
        "settlements_differing_from_books": sum(1 for row in rows if row["settlement_differs_from_books"]),
        "sisa_late": sum(1 for row in rows if row["sisa"] is not None and row["sisa"]["late"]),
        "municipalities": rows,
        "totals": totals,
        "bridge": bridge_answer(per_library, library_names, bridge_frame_cents, bridge_accounts),
        "library_funding_received": received,
    }


def bridge_answer(
    per_library: dict[str, dict[str, int]],
    library_names: dict[str, str],
    frame_cents: int,
    accounts: BridgeAccounts,
) -> dict[str, Any]:
    """The bridging subsidy: its frame, per library the figures and the final account's status, totals."""
    rows, totals = library_bridge_rows(per_library, library_names, accounts)
    return {
        "frame_cents": frame_cents,
        "frame_ungranted_cents": frame_cents - totals["granted_cents"],
        "account_deadline": accounts.account_deadline.isoformat() if accounts.account_deadline else None,
        "accounts_late": sum(1 for row in rows if row["account_status"] == "late"),
        "accounts_missing": sum(1 for row in rows if row["account_status"] == "missing"),
        "libraries": rows,
        "totals": totals,
    }
