"""What money an event moves: one pure function shared by the live projection and the audit replay.

``effects_of(topic, envelope, book)`` turns one envelope into the signed journal rows it causes
(see ``sql/view.py``), the names it records and the year it closes. It writes nothing: the live
projection (``sql/projection.py``) inserts the rows into SQL, the audit replay
(``services/audit/replay.py``) folds them into dicts. Because both call this one function, the
replayed balances cannot drift from the live ones.

Events that *set* an amount (a frame, an award, a settlement, a bridging grant or account) become
the difference to what was set before; ``book`` answers "what is set now" (``total``), the
line 1 of an earlier event (``original``, for reversals), whether a year is closed and whom a
municipality's grant of a year passed to (``successor``).

A merger (``GrantTransferred``) moves the grant's amounts so far *and its spending* (by category)
from the predecessor to the successor, each booked on the effective date or on its own day if that is
later (an award decided after the effective date moves on the day it was decided, so nobody's award
is negative in between): before it each code shows its own figures, from it the successor's include
the predecessor's and the predecessor's are zero.
Spending of the predecessor's year applied after the merger (a posting booked before the effective
date, recorded late) moves the same way in its own event, so the order in which the projector or the
replay reads the topics changes no figure (docs/decisions.md, "Mergers and grant years").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple, Protocol

from contracts.registry import contract_for
from contracts.topics import BRIDGE, EXPENDITURES, GRANTS

PRODUCER_OF_TOPIC = {
    GRANTS.name: GRANTS.producer,
    BRIDGE.name: BRIDGE.producer,
    EXPENDITURES.name: EXPENDITURES.producer,
}
GRANT_KINDS = ("awarded", "advance_paid", "settled", "settlement_reported", "reclaim_issued", "reclaim_received")

LOOKUPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "grant_frame": (("year",),),
    "awarded": (("grant_id",),),
    "settled": (("grant_id",),),
    "settlement_reported": (("grant_id",),),
    "bridge_frame": ((),),
    "bridge_grant": (("library_id",),),
    "bridge_settled": (("library_id",),),
}
"""Every (kind, fields) that ``effects_of`` asks ``book.total`` for, fields sorted by name.

An in-memory book keeps a running sum per entry; SQL answers any of them with a filtered sum. What a
merger moves of a grant it asks per booking day instead (``AppliedSoFar.grant_by_day``).
"""


class Refused(Exception):
    """The event must not be applied (the projection dead-letters it, the replay skips it)."""


class Original(NamedTuple):
    """Line 1 of an applied event, as a reversal needs it."""

    amount_cents: int
    municipality_code: str | None
    counterparty_id: str | None
    counterparty_name: str | None
    reference: str | None

    @classmethod
    def of_row(cls, row: Row) -> Original:
        """The ``Original`` of an event's line-1 row."""
        return cls(
            row["amount_cents"],
            row.get("municipality_code"),
            row.get("counterparty_id"),
            row.get("counterparty_name"),
            row.get("reference"),
        )


class Merger(NamedTuple):
    """A municipality's grant of a year passed to ``successor_code`` (from the ``ledger_mergers`` view)."""

    successor_code: str
    effective_on: date
    recorded_at: str


class AppliedSoFar(Protocol):
    def total(self, kind: str, **where: Any) -> int:
        """The sum of the journal's ``kind`` rows matching ``where`` (one of ``LOOKUPS``)."""
        ...

    def original(self, event_id: str) -> Original | None: ...

    def is_closed(self, municipality_code: str, year: int) -> bool: ...

    def successor(self, municipality_code: str, year: int) -> Merger | None:
        """Whom the municipality's grant of ``year`` passed to by a merger applied so far, if anyone."""
        ...

    def grant_by_day(self, grant_id: str, municipality_code: str) -> list[GrantOnDay]:
        """What the municipality holds of the grant so far (``GRANT_KINDS``), summed per kind and booking day
        (``grant_on_days``): what a merger moves, each day's sum on its own day if after the effective date."""
        ...

    def spent_by_day(self, municipality_code: str, year: int, merger_recorded_at: str) -> list[SpentOnDay]:
        """The municipality's spending of the grant year so far, summed per category, booking day and the
        day it was spent (``spent_on``, which a merger's move keeps), for the merger recorded at
        ``merger_recorded_at``: what was recorded after it (read before it) is summed per recording too,
        so each part moves known from its own recording (``spent_on_days``)."""
        ...


class SpentOnDay(NamedTuple):
    category: str
    booked_on: date
    amount_cents: int
    recorded_at: str
    """The latest ``recorded_at`` of the day's rows: when the ledger knew the day's sum."""
    spent_on: date
    """The day the money was spent: the posting's own booking day, kept when a merger moves it (SiSa
    counts it in the accounts year it was spent, docs/decisions.md)."""


def spent_on_days(rows: Iterable[Row], merger_recorded_at: str) -> list[SpentOnDay]:
    """Spent rows (or partial sums of them) summed per category, booking day and spending day, in that order,
    as a merger recorded at ``merger_recorded_at`` moves them.

    Rows recorded up to the merger are summed (the merger's move of them is known from its own
    recording); a row recorded after it (a late posting the projector read before the merger) keeps its
    ``recorded_at``, so its move is known from its recording and the rest of its day's from the merger's,
    as they would be had the merger been read first (docs/decisions.md, "Mergers and grant years").
    """
    days: dict[tuple[str, date, date, str], tuple[int, str]] = {}
    for row in rows:
        later = row["recorded_at"] if row["recorded_at"] > merger_recorded_at else ""
        key = (row["category"], row["booked_on"], row.get("spent_on") or row["booked_on"], later)
        cents, recorded_at = days.get(key, (0, ""))
        days[key] = (cents + int(row["amount_cents"]), max(recorded_at, row["recorded_at"]))
    return [
        SpentOnDay(category, on, cents, at, spent_on)
        for (category, on, spent_on, _later), (cents, at) in sorted(days.items())
    ]


class GrantOnDay(NamedTuple):
    """A grant figure (one of ``GRANT_KINDS``) a municipality holds, summed over one booking day."""

    kind: str
    booked_on: date
    amount_cents: int


def grant_on_days(rows: Iterable[Row]) -> list[GrantOnDay]:
    """Grant rows (or partial sums of them) summed per kind and booking day, in ``GRANT_KINDS`` order and
    then by day, so a merger's rows come out in one order whichever book answers."""
    days: dict[tuple[int, date], int] = {}
    for row in rows:
        key = (GRANT_KINDS.index(row["kind"]), row["booked_on"])
        days[key] = days.get(key, 0) + int(row["amount_cents"])
    return [GrantOnDay(GRANT_KINDS[kind], on, cents) for (kind, on), cents in sorted(days.items())]


Row = dict[str, Any]


@dataclass
class Effects:
    rows: list[tuple[int, Row]] = field(default_factory=list)
    """(line, journal columns without the envelope's event_id/event_type/recorded_at/stream_id)."""
    municipality_name: tuple[str, str] | None = None
    library_name: tuple[str, str] | None = None
    closing: Row | None = None
    """Columns of ``ledger_closings`` without ``event_id`` and ``recorded_at``."""
    merger: Row | None = None
    """Columns of ``ledger_mergers`` without ``event_id``."""
    declaration: Row | None = None
    """Columns of ``ledger_sisa_declarations`` without ``event_id`` and ``recorded_at``."""
    after_close: Row | None = None
    """A posting or reversal recorded after its year's close (its municipality and year): the columns of
    ``ledger_after_close`` without ``event_id``, ``event_type`` and ``recorded_at``. The write side
    refuses these (issue 16); one in a topic broke the rule (a store from before, a forged writer).
    Its money still counts, as every event's does (the books never drop an event silently): the
    view and the replay name it (``after_close_figures``) so that a person decides."""
    bridge_deadline: Row | None = None
    """The bridging frame's account deadline as a frame event sets it: ``account_deadline``, the column of
    ``ledger_bridge_deadlines`` besides ``event_id`` and ``recorded_at``."""
    bridge_account: Row | None = None
    """A library's final account of the bridging subsidy: ``library_id``, ``submitted_on``,
    ``account_deadline`` and ``late``, the columns of ``ledger_bridge_accounts`` without ``event_id`` and
    ``recorded_at``."""


def day(value: str) -> date:
    return date.fromisoformat(value[:10])


def check_origin(topic: str, envelope: dict[str, Any]) -> None:
    """An event is only taken from its own topic and its own producer."""
    event_type = envelope["event_type"]
    contract = contract_for(event_type, envelope["schema_version"])
    if not topic.endswith(contract.topic):
        raise Refused(f"{event_type} belongs on {contract.topic}, not on {topic}")
    producer = PRODUCER_OF_TOPIC.get(contract.topic)
    if producer is not None and envelope["producer"] != producer:
        raise Refused(f"{event_type} on {contract.topic} must come from {producer}, not {envelope['producer']}")


def effects_of(topic: str, envelope: dict[str, Any], book: AppliedSoFar) -> Effects:
    """The effects of one valid envelope read from ``topic``; raises ``Refused``."""
    check_origin(topic, envelope)
    handler = _HANDLERS.get(envelope["event_type"])
    if handler is None:  # other events (e.g. BridgeCommitmentChanged) change no balance
        return Effects()
    return handler(envelope, book)


def _lines(*rows: Row) -> Effects:
    """Numbered rows; a zero row after the first is left out (its line number stays unused)."""
    return Effects(rows=[(line, row) for line, row in enumerate(rows, start=1) if line == 1 or row["amount_cents"]])


# -- grants ----------------------------------------------------------------------------------------


Handler = Callable[[dict[str, Any], AppliedSoFar], Effects]
RowOf = Callable[[dict[str, Any], str, int, str], Row]


def _grant_row(p: dict[str, Any], kind: str, amount: int, on: str) -> Row:
    return {
        "kind": kind,
        "municipality_code": p["municipality_code"],
        "grant_id": p["grant_id"],
        "year": p["year"],
        "amount_cents": amount,
        "booked_on": day(on),
    }


def _bridge_row(p: dict[str, Any], kind: str, amount: int, on: str) -> Row:
    return {"kind": kind, "library_id": p["library_id"], "amount_cents": amount, "booked_on": day(on)}


def _movement(row_of: RowOf, kind: str, amount: str, on: str, *, total_per: str | None = None) -> Handler:
    """One row of ``kind``: ``payload[amount]`` booked on ``payload[on]`` (or the envelope's ``occurred_at``).

    With ``total_per`` the payload states a running total per that key (an award, a settlement, a
    bridge grant can be set again), so the row is the change against what ``book`` has so far.
    """

    def effects(envelope: dict[str, Any], book: AppliedSoFar) -> Effects:
        p = envelope["payload"]
        amount_cents = p[amount]
        if total_per is not None:
            amount_cents -= book.total(kind, **{total_per: p[total_per]})
        return _lines(row_of(p, kind, amount_cents, envelope[on] if on == "occurred_at" else p[on]))

    return effects


def _grant_frame(envelope: dict[str, Any], book: AppliedSoFar) -> Effects:
    p = envelope["payload"]
    delta = p["frame_cents"] - book.total("grant_frame", year=p["year"])
    return _lines({"kind": "grant_frame", "year": p["year"], "amount_cents": delta, "booked_on": day(p["decided_on"])})


_award = _movement(_grant_row, "awarded", "amount_cents", "awarded_on", total_per="grant_id")


def _awarded(envelope: dict[str, Any], book: AppliedSoFar) -> Effects:
    effects = _award(envelope, book)
    p = envelope["payload"]
    effects.municipality_name = (p["municipality_code"], p["municipality_name"])
    return effects


_settled = _movement(_grant_row, "settled", "settled_cents", "settled_on", total_per="grant_id")


def _grant_settled(envelope: dict[str, Any], book: AppliedSoFar) -> Effects:
    """Line 1 the settled amount; line 2 the reported spending it was settled on (kind
    ``settlement_reported``), both as the change to what was set before, so the national view can
    flag a settlement that differs from the books."""
    effects = _settled(envelope, book)
    p = envelope["payload"]
    reported = p["reported_spending_cents"] - book.total("settlement_reported", grant_id=p["grant_id"])
    if reported:
        effects.rows.append((2, _grant_row(p, "settlement_reported", reported, p["settled_on"])))
    return effects


def _transferred(envelope: dict[str, Any], book: AppliedSoFar) -> Effects:
    """The grant's amounts and spending so far move from the merged municipality to its successor,
    booked on the effective date or, for what was booked later (an award decided after the effective
    date), on its own day, and recorded when the merger was.

    Moving a later figure on the effective date would show it before it existed: the predecessor an
    award of minus the award and the successor one not yet decided (issue 20's oracle found it). The
    grant's own events share the merger's stream, so every one of them was recorded before it."""
    p = envelope["payload"]
    old, new, year = p["from_municipality_code"], p["municipality_code"], p["year"]
    effective_on = day(p["effective_on"])
    rows: list[Row] = []
    for figure in book.grant_by_day(p["grant_id"], old):
        # A settlement of 0 (nothing was spent) is a settlement all the same: its rows of 0 pass on too, so
        # the successor holds it (``answers.settlement_against_books`` asks for a ``settled`` row).
        if figure.amount_cents or figure.kind == "settled":
            moved_on = max(figure.booked_on, effective_on).isoformat()
            rows.append(_grant_row({**p, "municipality_code": old}, figure.kind, -figure.amount_cents, moved_on))
            rows.append(_grant_row({**p, "municipality_code": new}, figure.kind, figure.amount_cents, moved_on))
    # Spending is kept per (municipality, grant year), not per grant: a municipality holds one grant of
    # a year of its own. A chain of mergers passes a middle code's year on in one merger, perhaps in
    # several GrantTransferred events (one per grant it holds): its spending moves with the first.
    if book.successor(old, year) is None:
        for spent in book.spent_by_day(old, year, envelope["recorded_at"]):
            if spent.amount_cents:
                on = max(spent.booked_on, effective_on)
                recorded_at = max(spent.recorded_at, envelope["recorded_at"])
                rows.extend(
                    _spent_moves(old, new, year, spent.category, spent.amount_cents, on, recorded_at, spent.spent_on)
                )
    merger = {
        "municipality_code": old,
        "year": year,
        "successor_code": new,
        "effective_on": day(p["effective_on"]),
        "recorded_at": envelope["recorded_at"],
    }
    return Effects(rows=list(enumerate(rows, start=1)), merger=merger)


def _spent_moves(
    old: str,
    new: str,
    year: int,
    category: str,
    amount: int,
    on: date,
    recorded_at: str,
    spent_on: date,
    **details: Any,
) -> list[Row]:
    """Spending of ``old``'s grant year passing to ``new``: a pair of rows, out and in, booked ``on``
    the effective date or the spending's own day if later, so no day shows it twice or nowhere.
    Both keep ``spent_on``, the day the money was spent: SiSa counts it in that accounts year.

    ``recorded_at`` is when the ledger knew of the move, the later of the spending and the merger, so
    ``known_at`` between the two shows the spending where it was then; whichever of the two events
    the projection (or the replay) reads first, the rows come out the same.
    """
    description = f"merger: the grant of {year} passed from {old} to {new} on {on.isoformat()}"
    moves = []
    for code, signed in ((old, -amount), (new, amount)):
        row = {
            "kind": "spent",
            "municipality_code": code,
            "year": year,
            "category": category,
            "amount_cents": signed,
            "booked_on": on,
            "spent_on": spent_on,
            "description": description,
            "recorded_at": recorded_at,
            **details,
        }
        moves.append(row)
    return moves


# -- bridge ----------------------------------------------------------------------------------------


def _bridge_frame(envelope: dict[str, Any], book: AppliedSoFar) -> Effects:
    p = envelope["payload"]
    delta = p["frame_cents"] - book.total("bridge_frame")
    effects = _lines({"kind": "bridge_frame", "amount_cents": delta, "booked_on": day(envelope["occurred_at"])})
    effects.bridge_deadline = {"account_deadline": day(p["account_deadline"])}
    return effects


def _bridge_settled(envelope: dict[str, Any], book: AppliedSoFar) -> Effects:
    """The subsidy the account settles: what was spent, at most what was paid. Spending above the payments
    is the library's own and is not paid out (services/bridge/README.md), so paid = settled + reclaimed."""
    p = envelope["payload"]
    settled_cents = min(p["spent_cents"], p["paid_cents"])
    change_cents = settled_cents - book.total("bridge_settled", library_id=p["library_id"])
    return _lines(_bridge_row(p, "bridge_settled", change_cents, p["submitted_on"]))


def _bridge_account(envelope: dict[str, Any], book: AppliedSoFar) -> Effects:
    """What the account settles (its ``bridge_settled`` figure) and its timeliness.

    Late is the dates' verdict, submitted after the account deadline: an event whose ``late`` flag
    says otherwise is refused (the KB's service judges with the same rule, so only a forged or broken
    writer sends one), rather than show an account on time that the dates call late or the reverse."""
    p = envelope["payload"]
    submitted_on, deadline = day(p["submitted_on"]), day(p["account_deadline"])
    late = submitted_on > deadline
    if p["late"] != late:
        raise Refused(
            f"the account of {p['library_id']} says late={p['late']}, but was submitted on {submitted_on} "
            f"with the account deadline {deadline}"
        )
    effects = _bridge_settled(envelope, book)
    effects.bridge_account = {
        "library_id": p["library_id"],
        "submitted_on": submitted_on,
        "account_deadline": deadline,
        "late": late,
    }
    return effects


def _library(envelope: dict[str, Any], book: AppliedSoFar) -> Effects:
    p = envelope["payload"]
    return Effects(library_name=(p["library_id"], p["name"]))


# -- expenditures ----------------------------------------------------------------------------------


def _spent_row(envelope: dict[str, Any], book: AppliedSoFar, amount_cents: int, **details: Any) -> Effects:
    """The journal row of a posting (positive) or a reversal (negative) of an expenditure, line 1,
    and if the municipality's grant of the year has passed on by mergers, the rows moving it along
    (on the effective date, or its own booking date if later)."""
    p = envelope["payload"]
    booked_on = day(p["booked_on"])
    row = {
        "kind": "spent",
        "municipality_code": p["municipality_code"],
        "year": p["grant_year"],
        "category": p["category"],
        "amount_cents": amount_cents,
        "booked_on": booked_on,
        "spent_on": booked_on,
        "expenditure_id": p["expenditure_id"],
        **details,
    }
    rows = [row]
    code, seen = p["municipality_code"], {p["municipality_code"]}
    on, known = row["booked_on"], envelope["recorded_at"]
    after_close = None
    # The close and the year's postings share a partition (key: the municipality), so an event read
    # after the close was recorded after it, for the live projection and the replay alike.
    if book.is_closed(p["municipality_code"], p["grant_year"]):
        after_close = {"municipality_code": p["municipality_code"], "year": p["grant_year"]}
    while (merger := book.successor(code, p["grant_year"])) is not None and merger.successor_code not in seen:
        # each step of a chain of mergers on its own effective date, as the mergers moved what came before
        on, known = max(on, merger.effective_on), max(known, merger.recorded_at)
        rows.extend(
            _spent_moves(code, merger.successor_code, p["grant_year"], p["category"], amount_cents, on, known,
                         row["spent_on"], expenditure_id=p["expenditure_id"])
        )
        code = merger.successor_code
        seen.add(code)
    return Effects(rows=list(enumerate(rows, start=1)), after_close=after_close)


def _expenditure_recorded(envelope: dict[str, Any], book: AppliedSoFar) -> Effects:
    p = envelope["payload"]
    counterparty = p["counterparty"]
    return _spent_row(
        envelope,
        book,
        p["amount_cents"],
        counterparty_id=counterparty["id"],
        counterparty_name=counterparty["name"],
        reference=p["reference"],
        description=p["description"],
    )


def _expenditure_reversed(envelope: dict[str, Any], book: AppliedSoFar) -> Effects:
    p = envelope["payload"]
    original = book.original(p["reverses_event_id"])
    if original is not None and (
        original.amount_cents != p["amount_cents"] or original.municipality_code != p["municipality_code"]
    ):
        raise Refused(f"the reversal does not match the expenditure it reverses ({p['reverses_event_id']})")
    return _spent_row(
        envelope,
        book,
        -p["amount_cents"],
        reverses_event_id=p["reverses_event_id"],
        description=p["reason"],
        counterparty_id=original.counterparty_id if original is not None else None,
        counterparty_name=original.counterparty_name if original is not None else None,
        reference=original.reference if original is not None else None,
    )


def _year_closed(envelope: dict[str, Any], book: AppliedSoFar) -> Effects:
    p = envelope["payload"]
    if book.is_closed(p["municipality_code"], p["grant_year"]):
        raise Refused(f"the year {p['grant_year']} of {p['municipality_code']} was closed before")
    return Effects(
        closing={
            "municipality_code": p["municipality_code"],
            "year": p["grant_year"],
            "closed_on": day(p["closed_on"]),
            "closed_by": p["closed_by"],
            "final_account": p["final_account"],
        }
    )


def _sisa_line_declared(envelope: dict[str, Any], book: AppliedSoFar) -> Effects:
    """No money moves: the municipality's eindverantwoording of one SiSa line (latest one stands)."""
    p = envelope["payload"]
    return Effects(
        declaration={
            "municipality_code": p["municipality_code"],
            "accounts_year": p["accounts_year"],
            "grant_year": p["grant_year"],
            "final_account": p["final_account"],
            "declared_on": day(p["declared_on"]),
            "declared_by": p["declared_by"],
            "reason": p.get("reason"),
        }
    )


_HANDLERS: dict[str, Handler] = {
    "GrantFrameSet": _grant_frame,
    "GrantFrameAmended": _grant_frame,
    "GrantAwarded": _awarded,
    "AdvancePaid": _movement(_grant_row, "advance_paid", "amount_cents", "paid_on"),
    "GrantSettled": _grant_settled,
    "ReclaimIssued": _movement(_grant_row, "reclaim_issued", "amount_cents", "issued_on"),
    "ReclaimReceived": _movement(_grant_row, "reclaim_received", "amount_cents", "received_on"),
    "GrantTransferred": _transferred,
    "BridgeFrameSet": _bridge_frame,
    "BridgeFrameAmended": _bridge_frame,
    "LibraryRegistered": _library,
    # A bridge grant has no decision date of its own: it counts from when it was recorded.
    "BridgeGrantSet": _movement(_bridge_row, "bridge_grant", "amount_cents", "occurred_at", total_per="library_id"),
    "BridgePaymentMade": _movement(_bridge_row, "bridge_paid", "amount_cents", "paid_on"),
    "BridgeAccountSubmitted": _bridge_account,
    "BridgeReclaimIssued": _movement(_bridge_row, "bridge_reclaim", "amount_cents", "issued_on"),
    "ExpenditureRecorded": _expenditure_recorded,
    "ExpenditureReversed": _expenditure_reversed,
    "YearClosed": _year_closed,
    "SisaLineDeclared": _sisa_line_declared,
}


BRIDGE_FIGURES = {
    "granted_cents": "bridge_grant",
    "paid_cents": "bridge_paid",
    "settled_cents": "bridge_settled",
    "reclaim_issued_cents": "bridge_reclaim",
}


ACCOUNT_STATUSES = ("on_time", "late", "missing", "not_due", "no_grant")
"""A library's final account of the bridging subsidy on a day: submitted by the account deadline
(``on_time``) or after it (``late``); not submitted with the deadline passed (``missing``) or not yet
(``not_due``); or no account expected, the library holding no grant and paid nothing (``no_grant``)."""


class BridgeAccounts(NamedTuple):
    """What the account status of the libraries is judged from, as known at a point in time."""

    accounts: dict[str, Row]
    """Per library its final account (``Effects.bridge_account``), if submitted."""
    account_deadline: date | None
    """The frame's account deadline in force, if a frame is set."""
    day: date
    """The day judged on: an account not submitted is missing once this day is past the deadline."""


def account_status(figures: dict[str, int], account: Row | None, account_deadline: date | None, on: date) -> str:
    """One of ``ACCOUNT_STATUSES`` from a library's ``BRIDGE_FIGURES``; the deadline's own day is still on time
    (as the KB's service judges). Money paid is accounted for even before its grant counts (a grant is booked
    when it was recorded, a payment on its own day)."""
    if account is not None:
        return "late" if account["late"] else "on_time"
    if figures["granted_cents"] <= 0 and figures["paid_cents"] <= 0:
        return "no_grant"
    if account_deadline is not None and on > account_deadline:
        return "missing"
    return "not_due"


def latest_deadline(deadlines: Iterable[Row]) -> date | None:
    """The account deadline of the frame event recorded last among ``deadlines`` (rows with
    ``account_deadline`` and ``recorded_at``), if any."""
    latest = max(deadlines, key=lambda row: row["recorded_at"], default=None)
    return latest["account_deadline"] if latest is not None else None


def library_bridge_rows(
    per_library: dict[str, dict[str, int]], names: dict[str, str], accounts: BridgeAccounts | None = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Per library its bridge figures and account status, and their totals: one shape for the live view
    and the replay."""
    rows: list[dict[str, Any]] = []
    for library_id, kinds in sorted(per_library.items()):
        row: dict[str, Any] = {"library_id": library_id, "name": names.get(library_id)}
        row |= {figure: kinds.get(kind, 0) for figure, kind in BRIDGE_FIGURES.items()}
        if accounts is not None:
            account = accounts.accounts.get(library_id)
            status = account_status(row, account, accounts.account_deadline, accounts.day)
            deadline = account["account_deadline"] if account is not None else accounts.account_deadline
            row |= {
                "account_status": status,
                "account_submitted_on": account["submitted_on"].isoformat() if account is not None else None,
                "account_deadline": deadline.isoformat() if deadline is not None and status != "no_grant" else None,
            }
        rows.append(row)
    totals = {figure: sum(row[figure] for row in rows) for figure in BRIDGE_FIGURES}
    return rows, totals
