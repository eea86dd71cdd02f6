"""Random command histories (hypothesis) for the oracle's properties and the comparison with the ledger.

Valid and invalid commands alike: the oracle decides which are refused. So that most commands are
valid, the generator asks an oracle of its own for the state (a grant's code, what is still due) and
uses it most of the time. Moments only go forward; booking dates lie up to some weeks before their
recording (late invoices), sometimes in another year.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import strategies as st

from contracts.values import CATEGORIES
from tests.oracle import commands as c
from tests.oracle.model import Oracle

CODES = ("GM0363", "GM0344", "GM0599", "GM0014")
LIBRARIES = ("NL-KVK-41215098", "NL-KVK-30000001")
YEARS = (2024, 2025)
START = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)
BRIDGE_DEADLINE = date(2024, 9, 1)

amounts = st.integers(1, 60_000).map(lambda euros: euros * 100 + euros % 7)  # cents, not round euros


def opening(at: datetime) -> list[c.Command]:
    """Frames of both years and the bridging frame with its libraries: most histories need them."""
    return [
        c.SetFrame(2024, 200_000_00, date(2023, 12, 1), at),
        c.SetFrame(2025, 150_000_00, date(2024, 12, 1), at + timedelta(seconds=1)),
        c.SetBridgeFrame(90_000_00, BRIDGE_DEADLINE, at + timedelta(seconds=2)),
        *(c.RegisterLibrary(lib, f"Bibliotheek {i}", at + timedelta(seconds=3 + i)) for i, lib in enumerate(LIBRARIES)),
    ]


@st.composite
def histories(draw: st.DrawFn, max_steps: int = 40) -> list[c.Command]:
    at = START
    history: list[c.Command] = opening(at)
    state = Oracle()
    for first in history:
        state.apply(first)
    at += timedelta(minutes=1)
    spent_ids: list[str] = []
    for step in range(draw(st.integers(0, max_steps))):
        at += timedelta(hours=draw(st.integers(1, 24 * 25)), microseconds=step)
        booked = at.date() - timedelta(days=draw(st.integers(0, 40)))
        year = draw(st.sampled_from(YEARS))
        code = draw(st.sampled_from(CODES))
        grants = sorted(state.grants)
        existing = draw(st.integers(0, 4)) > 0  # mostly a grant that exists
        if grants and existing:
            year, code = draw(st.sampled_from(grants))
        grant = state.grants.get((year, code))
        library = draw(st.sampled_from(LIBRARIES))
        due = draw(st.booleans())  # the exact amount still due, or any
        kind = draw(st.sampled_from((
            "award", "award", "annex", "amend", "advance", "advance", "spend", "spend", "spend", "import",
            "reverse", "reverse", "settle", "settle", "reclaim", "receive", "merge", "close", "declare",
            "bridge_grant", "bridge_pay", "bridge_account",
        )))
        command: c.Command
        if kind == "award":
            command = c.Award(year, code, code, draw(amounts), booked, at)
        elif kind == "annex":
            annex = tuple(c.AnnexRow(x, x, draw(amounts)) for x in draw(st.sets(st.sampled_from(CODES), min_size=1)))
            command = c.ImportAnnex(year, annex, booked, at)
        elif kind == "amend":
            command = c.AmendFrame(year, draw(st.integers(50_000_00, 400_000_00)), booked, at)
        elif kind == "advance":
            amount = grant.award_cents - grant.paid_cents if grant and due else draw(amounts)
            command = c.PayAdvance(year, code, amount, booked, at)
        elif kind in ("spend", "import"):
            rows = tuple(
                c.ExpenditureRow(
                    f"00000000-0000-4000-8000-{step:06d}{n:06d}",
                    year,
                    draw(st.sampled_from(CATEGORIES)), draw(amounts) // 10 + 1,
                    booked if draw(st.integers(0, 4)) == 0 else date(year, draw(st.integers(1, 12)), 28),
                    draw(st.sampled_from(LIBRARIES)),
                )
                for n in range(1 if kind == "spend" else draw(st.integers(1, 3)))
            )
            spent_ids += [row.expenditure_id for row in rows]
            if grant is not None and draw(st.booleans()):
                code = grant.holder  # after a merger, the successor posts on the grant
            command = c.ImportExpenditures(code, rows, at)
            if kind == "spend":
                r = rows[0]
                command = c.Spend(r.expenditure_id, code, r.grant_year, r.category, r.amount_cents, r.booked_on, at,
                                  r.library_id)
        elif kind == "reverse" and spent_ids:
            given = draw(st.sampled_from((None, booked)))
            command = c.Reverse(draw(st.sampled_from(spent_ids)), at, given)
        elif kind == "settle":
            settled = grant is not None and grant.settled_cents is not None
            corrects = settled if draw(st.integers(0, 4)) else not settled
            command = c.Settle(year, code, draw(amounts), booked, at, corrects_latest=corrects)
        elif kind == "reclaim":
            amount = state.reclaim_due(year, code) if due else draw(amounts)
            command = c.IssueReclaim(year, code, amount, booked, at)
        elif kind == "receive":
            outstanding = grant.reclaim_issued_cents - grant.reclaim_received_cents if grant else 0
            amount = outstanding if due and outstanding else draw(amounts) // 4 + 1
            command = c.ReceiveReclaim(year, code, amount, booked, at)
        elif kind == "merge":
            successor = draw(st.sampled_from(CODES))
            command = c.Merge(code, successor, date(booked.year, draw(st.sampled_from((1, 4, 7))), 1), at)
        elif kind == "close":
            command = c.CloseYear(code, year, booked, at)
        elif kind == "declare":
            command = c.DeclareSisa(code, draw(st.sampled_from(YEARS)), year, draw(st.booleans()), at)
        elif kind == "bridge_grant":
            command = c.SetBridgeGrant(library, draw(amounts), at)
        elif kind == "bridge_pay":
            lib = state.libraries[library]
            amount = lib.granted_cents - lib.paid_cents if due else draw(amounts) // 8 + 1
            command = c.PayBridge(library, amount, booked, at)
        elif kind == "bridge_account":
            paid = state.libraries[library].paid_cents
            # up to twice what was paid: an account may report spending above the payments (settled at paid)
            spent = draw(st.integers(0, 2 * paid)) if paid else draw(amounts)
            command = c.SubmitBridgeAccount(library, spent, booked, at)
        else:
            continue
        state.apply(command)
        history.append(command)
    return history
