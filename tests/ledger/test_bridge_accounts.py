"""The bridging subsidy's final accounts in the ledger's view: the status rule, and an account whose `late`
flag contradicts its own dates (a forged or broken writer) refused rather than shown."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from contracts.topics import BRIDGE
from services.ledger.read_side.movements import Refused, account_status, effects_of
from tests.ledger.events import Streams, at

LIBRARY = "NL-KVK-41215098"


class NothingSoFar:
    """A book before any event: every total is 0."""

    def total(self, kind: str, **where: Any) -> int:
        return 0


def _account(submitted_on: str, late: bool, *, paid_cents: int = 100_00, spent_cents: int = 80_00) -> dict[str, Any]:
    return Streams("").event(
        "BridgeAccountSubmitted", f"library-{LIBRARY}", LIBRARY, at(submitted_on),
        library_id=LIBRARY, grant_cents=100_00, paid_cents=paid_cents, spent_cents=spent_cents,
        unspent_cents=paid_cents - min(spent_cents, paid_cents),
        period_start="2019-01-01", period_end="2023-05-01", submitted_on=submitted_on,
        account_deadline="2023-09-01", late=late,
    )


@pytest.mark.parametrize(
    ("submitted_on", "late"), [("2023-08-01", False), ("2023-09-01", False), ("2023-09-02", True)]
)
def test_an_account_is_late_only_after_the_deadline_day(submitted_on: str, late: bool) -> None:
    effects = effects_of(BRIDGE.name, _account(submitted_on, late), NothingSoFar())  # type: ignore[arg-type]
    assert effects.bridge_account == {
        "library_id": LIBRARY,
        "submitted_on": date.fromisoformat(submitted_on),
        "account_deadline": date(2023, 9, 1),
        "late": late,
    }
    assert [row["amount_cents"] for _line, row in effects.rows] == [80_00]


@pytest.mark.parametrize(
    ("paid_cents", "spent_cents", "settled_cents"),
    [(100_00, 80_00, 80_00), (100_00, 100_00, 100_00), (100_00, 100_01, 100_00), (0, 114_92, 0), (60_00, 0, 0)],
)
def test_an_account_settles_what_was_spent_at_most_what_was_paid(
    paid_cents: int, spent_cents: int, settled_cents: int
) -> None:
    """Spending above the payments is the library's own, not paid out (services/bridge/README.md; docs/decisions.md,
    "An account spending more than was paid"): the settled figure never exceeds paid, so paid = settled + reclaim."""
    account = _account("2023-08-01", False, paid_cents=paid_cents, spent_cents=spent_cents)
    effects = effects_of(BRIDGE.name, account, NothingSoFar())  # type: ignore[arg-type]
    assert [(row["kind"], row["library_id"], row["amount_cents"], row["booked_on"]) for _line, row in effects.rows] == [
        ("bridge_settled", LIBRARY, settled_cents, date(2023, 8, 1))
    ]


class SettledBefore(NothingSoFar):
    def total(self, kind: str, **where: Any) -> int:
        return 30_00 if (kind, where) == ("bridge_settled", {"library_id": LIBRARY}) else 0


def test_an_account_moves_the_settled_figure_by_the_change_to_what_the_book_has() -> None:
    effects = effects_of(BRIDGE.name, _account("2023-08-01", False, spent_cents=150_00), SettledBefore())  # type: ignore[arg-type]
    assert [row["amount_cents"] for _line, row in effects.rows] == [100_00 - 30_00]


@pytest.mark.parametrize(("submitted_on", "claimed"), [("2023-09-20", False), ("2023-08-01", True)])
def test_an_account_whose_late_flag_contradicts_its_dates_is_refused(submitted_on: str, claimed: bool) -> None:
    # a late account passed off as on time, and the reverse: the view would show a verdict the dates deny
    with pytest.raises(Refused, match=f"says late={claimed}"):
        effects_of(BRIDGE.name, _account(submitted_on, claimed), NothingSoFar())  # type: ignore[arg-type]


def test_the_status_of_an_account_on_a_day() -> None:
    deadline = date(2023, 9, 1)
    granted = {"granted_cents": 100_00, "paid_cents": 0}
    on_time = {"late": False}
    assert account_status(granted, on_time, deadline, date(2026, 1, 1)) == "on_time"
    assert account_status(granted, {"late": True}, deadline, date(2026, 1, 1)) == "late"
    assert account_status(granted, None, deadline, deadline) == "not_due"  # the deadline's own day
    assert account_status(granted, None, deadline, date(2023, 9, 2)) == "missing"
    assert account_status(granted, None, None, date(2026, 1, 1)) == "not_due"  # no frame, no deadline yet
    # money paid is accounted for even before its grant is booked; neither granted nor paid: none expected
    assert account_status({"granted_cents": 0, "paid_cents": 5_00}, None, deadline, date(2023, 9, 2)) == "missing"
    assert account_status({"granted_cents": 0, "paid_cents": 0}, None, deadline, date(2023, 9, 2)) == "no_grant"
