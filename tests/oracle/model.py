"""An independent reference model of the SPUK IDO grant money and the bridging subsidy (issue 20).

Written from the domain documents only, never from ``services/`` (it imports nothing of it), so that a
wrong rule in the services is not repeated here. Feed it commands (``tests.oracle.commands``) one by
one with ``Oracle.apply``: it answers ``ACCEPTED`` or a ``Refused`` naming the rule, and a refused
command changes nothing. Read every figure the ledger publishes with ``balance``, ``national``,
``sisa`` and ``bridge`` at any ``Point`` (``as_of``: booked on or before the day; ``known_at``:
recorded at or before the moment). Money is integer cents throughout.

Sources: README = README.md; DEC = docs/decisions.md (section); API = docs/api/README.md (section);
OAS = the OpenAPI documents in docs/api/ (route summaries and response descriptions); FIN =
docs/finance-systems.md; AUD = docs/audit.md; DASH = docs/dashboard.md; BRIDGE README =
services/bridge/README.md. ORACLE marks what the
documents leave open and this model decides (docs/decisions.md, "An independent money oracle").

Payments (ido.grants.v1)
 P1 A year's frame is set once; the same frame again changes nothing, another is refused; it changes
    only by an amendment, never to the same amount or below what is awarded, nor decided before the
    decision it amends (ORACLE: found by the random histories through the services, issue 20). DEC
    Payments; OAS frame.
 P2 An award needs the year's frame; the year's awards never exceed the frame; a municipality has one
    award a year (the identical award again changes nothing, another is refused). OAS grants; DEC Payments.
 P3 An annex import is one batch: rows already awarded identically are skipped, a row with another
    amount for an existing award refuses the whole file, the new rows together must fit the frame.
    DEC Payments; OAS annex.
 P4 Advances never exceed the award; after a settlement, never the settled amount ("what is still
    due"). OAS advances; contracts AdvancePaid description; DEC Settlement rules (cap=award default).
 P5 Settled = min(reported spending, award) by default; a lower amount needs a reason; above that
    default is refused (cap=award; never above what was reported: ORACLE). A second settlement must
    correct the latest one, with a reason, and change the reported or the settled figure; nor may it leave
    less to reclaim than was already reclaimed (ORACLE: the payments service's rules, found by the random
    histories); the settled figure is *set*: it moves by the difference. DEC Payments, AUD replay.
 P6 A reclaim is exactly paid - settled - already reclaimed, only after a settlement and only when
    positive; a receipt never exceeds what is outstanding (issued - received). DEC Payments; OAS reclaims.
 P8 Each step of a grant is dated in order: an advance not before the award; a settlement after the
    grant year ends, not before the award nor before the settlement it corrects; a reclaim not before
    the settlement; a receipt not before the (latest) reclaim issued. ORACLE: the payments service's
    rules, found by the random histories through the services (issue 20); what a user expects.
 P7 A merger passes every grant the municipality holds to the successor (its award, advances,
    settlements and reclaims), and its spending of each such grant year, per category and booking
    day; each moved amount is booked on the later of its own day and the effective date and known
    from the later of its own recording and the merger's; through chains too. Spending of a year the
    predecessor held no grant of does not move. So an award decided after the effective date moves
    on its own day: nobody's award is negative before it was made. Refused: merging into itself, a code that never held
    a grant, a code merged before, a successor that merged itself, the same merger on another day (DEC A
    merged municipality is awarded nothing more), a code whose grants are all closed (DEC A merger that
    passes nothing on is refused). DEC Mergers and
    grant years; OAS merger. A grant event after the
    merger books to its holder. Awarding a merged code is refused, of any year (DEC A merged municipality is
    awarded nothing more).

Ledger (ido.expenditures.v1)
 L1 A posting needs an award of its grant year held by the municipality, its own or passed to it
    (once held, always: late invoices of a predecessor), unless the year is open before award.
    API Ledger postings; DEC Mergers and grant years.
 L2 A posting is booked within its grant year, amount at least 1 cent, a known category. DEC Inputs
    (reversal) "must be a date within the grant year"; contracts ExpenditureRecorded.
 L3 A posting under a merged code booked on or after the effective date is refused; before it, it is
    taken and moves (P7). Reversals are not refused for a merger. API Ledger postings; DEC Mergers.
 L4 A closed year refuses postings, reversals and imports; a second close, and a close before the
    year starts, are refused. DEC Rules in the domain; API Closed years.
 L5 A reversal undoes one expenditure once (same amount and category, its own booking day): given,
    within the grant year and not before the expenditure's day; not given, today if that qualifies,
    else the expenditure's own day. DEC Inputs (Reversal without booked_on); FIN 7.
 L6 An import is all rows or none. OAS import; DASH Uploading.
 L7 A SiSa line is declared once (the same declaration by the same declarer again changes nothing: the
    ledger answers it as a retry, found by the random histories, issue 20); its grant year is at most
    the accounts year; the municipality's declaration is dated the day it is recorded. API SiSa; DEC SiSa.

Figures (balances, national, SiSa, bridge)
 F1 as_of counts what is booked on or before the day, known_at what is recorded by the moment; both
    at once filter both. FIN Balances; DEC Ledger; AUD replay.
 F2 Per municipality and grant year: awarded, advance paid, spent per category (postings minus
    reversals) and spent in all, unspent = advance paid - spent (may be negative), spent beyond
    award = the part of spent above awarded (never negative: ORACLE), settled, reclaim issued and
    received. OAS BalancesOut.
 F3 National per year: totals of F2 over every municipality; the frame (set and amendments, booked on
    their ``decided_on``); frame unawarded = frame - awarded; awarded within frame; per library the
    library funding it received (listed once any posting to it counts, also at 0); each
    municipality's settlement's reported spending and whether it differs from its spent (null before
    settling, and for a municipality whose grant, with its settlement, a merger passed on: DEC Mergers);
    counts of those and of every municipality's late SiSa account of the year (also one without figures
    of the year). OAS NationalOut, MunicipalityBalanceOut; API SiSa; DEC Mergers.
 F4 SiSa of accounts year T: a line per grant year G <= T the municipality holds an award of (or has
    spending on) at the point; besteding = spent on G with its spending day in T, cumulatief =
    spent on G up to the end of T; spending a merger moved keeps its spending day. A line declared
    final in an earlier accounts year is not listed. Deadline 15 July T+1; a line is late when
    declared after it, or undeclared while the judged day (as_of, else known_at's day, else today)
    is past it; a declaration counts from its declared_on (as_of) and its recording (known_at). The
    top-level figures are the line G = T. API SiSa; DEC SiSa.
 F5 Bridge: the frame; per library granted (set, booked on the day it was recorded: DEC 360Giving),
    paid, settled (= min(spent by the final account, paid): BRIDGE README "unspent = paid - min(spent,
    paid)", DEC "An account spending more than was paid") and reclaim issued (paid - settled, with the
    account, booked on the day the bridge took it: BRIDGE README "issued today, UTC"); totals; frame
    ungranted; account status on the judged day: on_time (by the deadline),
    late, missing (granted or paid, none submitted, the deadline passed), not_due, no_grant (nothing granted
    nor paid at the point); the deadline as known at known_at, not hidden by as_of (DEC "The bridging
    subsidy's final accounts": a deadline is a rule, not a booking). DEC Bridge,
    DASH bridging subsidy, DEC national view. Bridge rules: a frame once; grants within the frame;
    payments never above the grant (nor a grant corrected below what is paid: ORACLE); one account (spending
    above what was paid is taken and settles at what was paid: BRIDGE README), and nothing granted or paid
    after it (ORACLE). OAS bridge; DEC Bridge.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from contracts.values import CATEGORIES
from tests.oracle import commands as c

# -- answers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    pass


@dataclass(frozen=True)
class Refused:
    rule: str


ACCEPTED = Accepted()
Verdict = Accepted | Refused


@dataclass(frozen=True)
class Point:
    as_of: date | None = None
    known_at: datetime | None = None

    def counts(self, booked_on: date, recorded: datetime) -> bool:
        return (self.as_of is None or booked_on <= self.as_of) and (self.known_at is None or recorded <= self.known_at)

    def day(self, today: date) -> date:
        """The day deadlines are judged on (F4, F5)."""
        if self.as_of is not None:
            return self.as_of
        return self.known_at.date() if self.known_at is not None else today


MONEY_KINDS = ("awarded", "advanced", "spent", "settled", "reported", "reclaim_issued", "reclaim_received")


@dataclass(frozen=True)
class Entry:
    """An amount that counts for ``code``'s grant ``year`` from ``booked_on`` as known from ``recorded``;
    mergers may move it further along (P7). ``spent_on`` is the day money was spent (F4)."""

    code: str
    year: int
    kind: str
    amount_cents: int
    booked_on: date
    recorded: datetime
    category: str | None = None
    library_id: str | None = None


@dataclass(frozen=True)
class Transfer:
    successor: str
    effective_on: date
    recorded: datetime


# -- state -----------------------------------------------------------------------------------------


@dataclass
class _Grant:
    holder: str
    award_cents: int
    paid_cents: int = 0
    settled_cents: int | None = None
    reclaim_issued_cents: int = 0
    reclaim_received_cents: int = 0
    awarded_on: date = date.min  # P8: the days a later step of the grant may not precede
    settled_on: date = date.min
    reclaim_issued_on: date = date.min

    @property
    def closed(self) -> bool:
        """Settled, with nothing left to pay, to reclaim or to receive (OAS MergerResult.closed: "Closed grants,
        which stay with the predecessor")."""
        if self.settled_cents is None:
            return False
        to_reclaim = max(0, self.paid_cents - self.settled_cents)
        return (
            self.settled_cents <= self.paid_cents
            and self.reclaim_issued_cents == to_reclaim
            and self.reclaim_received_cents == self.reclaim_issued_cents
        )


@dataclass
class _Expenditure:
    code: str
    grant_year: int
    category: str
    amount_cents: int
    booked_on: date
    library_id: str
    reversed: bool = False


@dataclass
class _Library:
    name: str
    granted_cents: int = 0
    granted_known: bool = False
    """A grant was set, 0 included: the service's rule for an account (``Library.submit_account``: a grant of 0
    set is a grant to account for; none set is not)."""
    paid_cents: int = 0
    account: tuple[date, date] | None = None  # (submitted_on, the deadline it was judged against)


@dataclass(frozen=True)
class _Declaration:
    final_account: bool
    declared_on: date
    recorded: datetime
    own: bool = True  # declared by the municipality itself (no declared_on given)


SISA_DEADLINE_DAY = (7, 15)  # F4: 15 July of T+1


def sisa_deadline(accounts_year: int) -> date:
    return date(accounts_year + 1, *SISA_DEADLINE_DAY)


@dataclass
class Oracle:
    open_years: frozenset[int] = frozenset()
    today: date = date(2026, 8, 1)
    frames: dict[int, int] = field(default_factory=dict)
    frame_entries: list[tuple[int, int, date, datetime]] = field(default_factory=list)
    grants: dict[tuple[int, str], _Grant] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    held: set[tuple[str, int]] = field(default_factory=set)  # L1: (code, year) ever held
    transfers: dict[tuple[str, int], Transfer] = field(default_factory=dict)
    merged: dict[str, Transfer] = field(default_factory=dict)
    expenditures: dict[str, _Expenditure] = field(default_factory=dict)
    closed: dict[tuple[str, int], date] = field(default_factory=dict)
    declarations: dict[tuple[str, int, int], _Declaration] = field(default_factory=dict)
    reported: dict[tuple[int, str], int] = field(default_factory=dict)  # the latest settlement's, per grant
    entries: list[Entry] = field(default_factory=list)
    bridge_frame: tuple[int, date] | None = None
    bridge_frame_recorded: datetime | None = None
    libraries: dict[str, _Library] = field(default_factory=dict)
    bridge_entries: list[tuple[str, str, int, date, datetime]] = field(default_factory=list)
    bridge_accounts: dict[str, tuple[date, datetime]] = field(default_factory=dict)

    # -- commands ----------------------------------------------------------------------------------

    def apply(self, command: c.Command) -> Verdict:
        """Applies one command: its verdict; a refused command changes nothing."""
        handler: Callable[[Any], Verdict] = getattr(self, "_" + type(command).__name__)
        return handler(command)

    def _SetFrame(self, cmd: c.SetFrame) -> Verdict:  # noqa: N802 (named after the command)
        if cmd.year in self.frames:
            return ACCEPTED if self.frames[cmd.year] == cmd.frame_cents else Refused("P1 frame set once")
        self._set_frame(cmd.year, cmd.frame_cents, cmd.decided_on, cmd.known_at)
        return ACCEPTED

    def _AmendFrame(self, cmd: c.AmendFrame) -> Verdict:  # noqa: N802
        if cmd.year not in self.frames:
            return Refused("P1 no frame to amend")
        if cmd.frame_cents == self.frames[cmd.year]:
            return Refused("P1 the same frame")
        if cmd.frame_cents < self._awarded(cmd.year):
            return Refused("P1 frame below what is awarded")
        if cmd.decided_on < max(on for y, _d, on, _r in self.frame_entries if y == cmd.year):
            return Refused("P1 an amendment decided before the decision it amends")
        self._set_frame(cmd.year, cmd.frame_cents, cmd.decided_on, cmd.known_at)
        return ACCEPTED

    def _set_frame(self, year: int, frame_cents: int, decided_on: date, recorded: datetime) -> None:
        self.frame_entries.append((year, frame_cents - self.frames.get(year, 0), decided_on, recorded))
        self.frames[year] = frame_cents

    def _awarded(self, year: int) -> int:
        return sum(g.award_cents for (y, _code), g in self.grants.items() if y == year)

    def _Award(self, cmd: c.Award) -> Verdict:  # noqa: N802
        return self._ImportAnnex(
            c.ImportAnnex(cmd.year, (c.AnnexRow(cmd.code, cmd.name, cmd.amount_cents),), cmd.awarded_on, cmd.known_at)
        )

    def _ImportAnnex(self, cmd: c.ImportAnnex) -> Verdict:  # noqa: N802
        if cmd.year not in self.frames:
            return Refused("P2 no frame for the year")
        new: list[c.AnnexRow] = []
        for row in cmd.rows:
            grant = self.grants.get((cmd.year, row.code))
            if grant is not None:
                if grant.award_cents != row.amount_cents:
                    return Refused("P2/P3 another award for the municipality this year")
                continue
            if row.amount_cents < 1 or row.code in self.merged or row.code in {r.code for r in new}:
                return Refused("P2 invalid award row")
            new.append(row)
        if self._awarded(cmd.year) + sum(r.amount_cents for r in new) > self.frames[cmd.year]:
            return Refused("P2 awards above the frame")
        for row in new:
            self.grants[(cmd.year, row.code)] = _Grant(row.code, row.amount_cents, awarded_on=cmd.awarded_on)
            self.names.setdefault(row.code, row.name)
            self.held.add((row.code, cmd.year))
            self._entry(row.code, cmd.year, "awarded", row.amount_cents, cmd.awarded_on, cmd.known_at)
        return ACCEPTED

    def _entry(self, code: str, year: int, kind: str, amount: int, booked_on: date, recorded: datetime,
               category: str | None = None, library_id: str | None = None) -> None:
        self.entries.append(Entry(code, year, kind, amount, booked_on, recorded, category, library_id))

    def addressed(self, year: int, code: str) -> str:
        """P7: the grant a command names by ``code``: its own, else the one a merger passed to it when exactly
        one did (several: the command must name one by its original code). The original code, the key."""
        if (year, code) in self.grants:
            return code
        held = [original for (y, original), g in self.grants.items() if y == year and g.holder == code]
        return held[0] if len(held) == 1 else code

    def _PayAdvance(self, cmd: c.PayAdvance) -> Verdict:  # noqa: N802
        grant = self.grants.get((cmd.year, self.addressed(cmd.year, cmd.grant_code)))
        if grant is None:
            return Refused("P4 no such grant")
        limit = grant.award_cents if grant.settled_cents is None else grant.settled_cents
        if cmd.amount_cents < 1 or grant.paid_cents + cmd.amount_cents > limit:
            return Refused("P4 payments above the award (or the settled amount)")
        if cmd.paid_on < grant.awarded_on:
            return Refused("P8 paid before the award")
        grant.paid_cents += cmd.amount_cents
        self._entry(grant.holder, cmd.year, "advanced", cmd.amount_cents, cmd.paid_on, cmd.known_at)
        return ACCEPTED

    def _Settle(self, cmd: c.Settle) -> Verdict:  # noqa: N802
        key = (cmd.year, self.addressed(cmd.year, cmd.grant_code))
        grant = self.grants.get(key)
        if grant is None:
            return Refused("P5 no such grant")
        if cmd.corrects_latest != (grant.settled_cents is not None):
            return Refused("P5 a second settlement corrects the latest; a first corrects none")
        default = min(cmd.reported_spending_cents, grant.award_cents)
        settled = default if cmd.settled_cents is None else cmd.settled_cents
        if settled > default or settled < 0 or (settled < default and not cmd.reason):
            return Refused("P5 settled above min(reported, award), or lower without a reason")
        if cmd.settled_on.year <= cmd.year or cmd.settled_on < max(grant.awarded_on, grant.settled_on):
            return Refused("P8 settled after the grant year, the award and the settlement it corrects")
        if cmd.corrects_latest and not cmd.reason:
            return Refused("P5 a correction needs a reason")
        if cmd.corrects_latest and (settled, cmd.reported_spending_cents) == (grant.settled_cents,
                                                                            self.reported.get(key)):
            return Refused("P5 a correction that changes nothing")
        if max(0, grant.paid_cents - settled) < grant.reclaim_issued_cents:
            return Refused("P6 a settlement leaving less to reclaim than was already reclaimed")
        previous = grant.settled_cents or 0
        grant.settled_on = cmd.settled_on
        reported_before = self.reported.get(key, 0)
        grant.settled_cents = settled
        self.reported[key] = cmd.reported_spending_cents
        self._entry(grant.holder, cmd.year, "settled", settled - previous, cmd.settled_on, cmd.known_at)
        self._entry(grant.holder, cmd.year, "reported", cmd.reported_spending_cents - reported_before,
                    cmd.settled_on, cmd.known_at)
        return ACCEPTED

    def reclaim_due(self, year: int, grant_code: str) -> int:
        """P6: what a reclaim issued now must be (0: none may be issued)."""
        grant = self.grants.get((year, self.addressed(year, grant_code)))
        if grant is None or grant.settled_cents is None:
            return 0
        return max(0, grant.paid_cents - grant.settled_cents - grant.reclaim_issued_cents)

    def _IssueReclaim(self, cmd: c.IssueReclaim) -> Verdict:  # noqa: N802
        due = self.reclaim_due(cmd.year, cmd.grant_code)
        if due == 0 or cmd.amount_cents != due:
            return Refused("P6 a reclaim is exactly paid - settled - reclaimed, after settling")
        grant = self.grants[(cmd.year, self.addressed(cmd.year, cmd.grant_code))]
        if cmd.issued_on < grant.settled_on:
            return Refused("P8 a reclaim issued before the settlement")
        grant.reclaim_issued_cents += due
        grant.reclaim_issued_on = cmd.issued_on
        self._entry(grant.holder, cmd.year, "reclaim_issued", due, cmd.issued_on, cmd.known_at)
        return ACCEPTED

    def _ReceiveReclaim(self, cmd: c.ReceiveReclaim) -> Verdict:  # noqa: N802
        grant = self.grants.get((cmd.year, self.addressed(cmd.year, cmd.grant_code)))
        if grant is None or cmd.amount_cents < 1 or (
            grant.reclaim_received_cents + cmd.amount_cents > grant.reclaim_issued_cents
        ):
            return Refused("P6 a receipt above what is outstanding")
        if cmd.received_on < grant.reclaim_issued_on:
            return Refused("P8 a receipt before the reclaim was issued")
        grant.reclaim_received_cents += cmd.amount_cents
        self._entry(grant.holder, cmd.year, "reclaim_received", cmd.amount_cents, cmd.received_on, cmd.known_at)
        return ACCEPTED

    def _Merge(self, cmd: c.Merge) -> Verdict:  # noqa: N802
        # a closed grant stays with the predecessor (OAS MergerResult.closed); it still counts as held (P7)
        held = [(year, code) for (year, code), g in self.grants.items() if g.holder == cmd.code and not g.closed]
        if cmd.code == cmd.successor:
            return Refused("P7 merging into itself")
        earlier = self.merged.get(cmd.code)
        if earlier is not None and earlier.successor == cmd.successor:
            # the same merger again passes nothing more (OAS MergerResult.unchanged: "Grants passed to it by
            # this merger before"); on another effective date it is refused, the first date stands (DEC A merged
            # municipality is awarded nothing more)
            if earlier.effective_on != cmd.effective_on:
                return Refused("P7 the same merger on another day")
            return ACCEPTED
        if cmd.code in self.merged or cmd.successor in self.merged:
            return Refused("P7 merged before (or into a code that merged)")
        if not any(code == cmd.code for code, _year in self.held):
            return Refused("P7 never held a grant")
        if not held:
            # a merger is recorded by the grants it passes on: with every one closed there is none to record it
            # (DEC A merger that passes nothing on is refused)
            return Refused("P7 every grant it holds is closed")
        transfer = Transfer(cmd.successor, cmd.effective_on, cmd.known_at)
        self.merged[cmd.code] = transfer
        for year, grant_code in held:
            self.grants[(year, grant_code)].holder = cmd.successor
            self.held.add((cmd.successor, year))
            self.transfers[(cmd.code, year)] = transfer
        return ACCEPTED

    def _Spend(self, cmd: c.Spend) -> Verdict:  # noqa: N802
        row = c.ExpenditureRow(cmd.expenditure_id, cmd.grant_year, cmd.category, cmd.amount_cents, cmd.booked_on,
                               cmd.library_id)
        return self._ImportExpenditures(c.ImportExpenditures(cmd.code, (row,), cmd.known_at))

    def spending_refusal(self, code: str, row: c.ExpenditureRow) -> Refused | None:
        if row.expenditure_id in self.expenditures or row.category not in CATEGORIES or row.amount_cents < 1:
            return Refused("L2 invalid posting")
        if row.booked_on.year != row.grant_year:
            return Refused("L2 booked outside its grant year")
        if (code, row.grant_year) not in self.held and row.grant_year not in self.open_years:
            return Refused("L1 no award of the grant year")
        if (code, row.grant_year) in self.closed:
            return Refused("L4 the year is closed")
        merger = self.merged.get(code)
        if merger is not None and row.booked_on >= merger.effective_on:
            return Refused("L3 merged: post under the successor")
        return None

    def _ImportExpenditures(self, cmd: c.ImportExpenditures) -> Verdict:  # noqa: N802
        ids = [row.expenditure_id for row in cmd.rows]
        if not cmd.rows or len(set(ids)) != len(ids):
            return Refused("L6 an import of distinct rows")
        for row in cmd.rows:
            refusal = self.spending_refusal(cmd.code, row)
            if refusal is not None:
                return refusal
        for row in cmd.rows:
            self.expenditures[row.expenditure_id] = _Expenditure(
                cmd.code, row.grant_year, row.category, row.amount_cents, row.booked_on, row.library_id
            )
            self._entry(cmd.code, row.grant_year, "spent", row.amount_cents, row.booked_on, cmd.known_at,
                        row.category, row.library_id)
        return ACCEPTED

    def reversal_day(self, expenditure_id: str, today: date) -> date:
        """L5: the day a reversal without a date books on."""
        e = self.expenditures[expenditure_id]
        return today if today.year == e.grant_year and today >= e.booked_on else e.booked_on

    def _Reverse(self, cmd: c.Reverse) -> Verdict:  # noqa: N802
        e = self.expenditures.get(cmd.expenditure_id)
        if e is None or e.reversed:
            return Refused("L5 reversed once")
        if (e.code, e.grant_year) in self.closed:
            return Refused("L4 the year is closed")
        day = cmd.booked_on if cmd.booked_on is not None else self.reversal_day(cmd.expenditure_id, cmd.known_at.date())
        if day.year != e.grant_year or day < e.booked_on:
            return Refused("L5 reversal outside the grant year or before the expenditure")
        e.reversed = True
        self._entry(e.code, e.grant_year, "spent", -e.amount_cents, day, cmd.known_at, e.category, e.library_id)
        return ACCEPTED

    def _CloseYear(self, cmd: c.CloseYear) -> Verdict:  # noqa: N802
        if (cmd.code, cmd.year) in self.closed:
            return Refused("L4 closed once")
        if cmd.closed_on < date(cmd.year, 1, 1):
            return Refused("L4 closed before the year starts")
        self.closed[(cmd.code, cmd.year)] = cmd.closed_on
        return ACCEPTED

    def _DeclareSisa(self, cmd: c.DeclareSisa) -> Verdict:  # noqa: N802
        key = (cmd.code, cmd.accounts_year, cmd.grant_year)
        day = cmd.declared_on if cmd.declared_on is not None else cmd.known_at.date()
        existing = self.declarations.get(key)
        same = (cmd.final_account, cmd.declared_on is None)
        if existing is not None and (existing.final_account, existing.own) == same:
            return ACCEPTED  # L7: the same declaration again is its retry and changes nothing
        if key in self.declarations or cmd.grant_year > cmd.accounts_year or day > cmd.known_at.date():
            return Refused("L7 a line declared once, G <= T, not after today")
        self.declarations[key] = _Declaration(cmd.final_account, day, cmd.known_at, cmd.declared_on is None)
        return ACCEPTED

    def _SetBridgeFrame(self, cmd: c.SetBridgeFrame) -> Verdict:  # noqa: N802
        if self.bridge_frame is not None or cmd.frame_cents < 1:
            return Refused("F5 the bridging frame is set once")
        self.bridge_frame = (cmd.frame_cents, cmd.account_deadline)
        self.bridge_frame_recorded = cmd.known_at
        return ACCEPTED

    def _RegisterLibrary(self, cmd: c.RegisterLibrary) -> Verdict:  # noqa: N802
        if cmd.library_id in self.libraries:
            return Refused("F5 a library is registered once")
        self.libraries[cmd.library_id] = _Library(cmd.name)
        return ACCEPTED

    def _SetBridgeGrant(self, cmd: c.SetBridgeGrant) -> Verdict:  # noqa: N802
        library = self.libraries.get(cmd.library_id)
        if self.bridge_frame is None or library is None or cmd.library_id in self.bridge_accounts:
            return Refused("F5 a grant needs the frame and a library without an account")
        committed = sum(lib.granted_cents for lib in self.libraries.values())
        if committed - library.granted_cents + cmd.amount_cents > self.bridge_frame[0] or cmd.amount_cents < 0:
            return Refused("F5 grants above the bridging frame")
        if cmd.amount_cents < library.paid_cents:
            return Refused("F5 a grant below what is paid")
        delta = cmd.amount_cents - library.granted_cents
        library.granted_cents = cmd.amount_cents
        library.granted_known = True
        self.bridge_entries.append((cmd.library_id, "granted", delta, cmd.known_at.date(), cmd.known_at))
        return ACCEPTED

    def _PayBridge(self, cmd: c.PayBridge) -> Verdict:  # noqa: N802
        library = self.libraries.get(cmd.library_id)
        if library is None or cmd.amount_cents < 1 or library.paid_cents + cmd.amount_cents > library.granted_cents:
            return Refused("F5 payments above the bridging grant")
        if cmd.library_id in self.bridge_accounts:
            return Refused("F5 no payment after the final account")
        library.paid_cents += cmd.amount_cents
        self.bridge_entries.append((cmd.library_id, "paid", cmd.amount_cents, cmd.paid_on, cmd.known_at))
        return ACCEPTED

    def _SubmitBridgeAccount(self, cmd: c.SubmitBridgeAccount) -> Verdict:  # noqa: N802
        library = self.libraries.get(cmd.library_id)
        if (library is None or self.bridge_frame is None or cmd.library_id in self.bridge_accounts
                or not library.granted_known or cmd.spent_cents < 0):
            return Refused("F5 one account, a library with a grant, spending not negative")
        library.account = (cmd.submitted_on, self.bridge_frame[1])
        self.bridge_accounts[cmd.library_id] = (cmd.submitted_on, cmd.known_at)
        # settled at what the payments cover: spending above them is the library's own (BRIDGE README)
        settled = min(cmd.spent_cents, library.paid_cents)
        self.bridge_entries.append((cmd.library_id, "settled", settled, cmd.submitted_on, cmd.known_at))
        unspent = library.paid_cents - settled
        if unspent:  # issued by the bridge on the day it takes the account (BRIDGE README: "issued today, UTC")
            self.bridge_entries.append((cmd.library_id, "reclaim_issued", unspent, self.today, cmd.known_at))
        return ACCEPTED

    # -- figures -----------------------------------------------------------------------------------

    def owner(self, entry: Entry, at: Point) -> str:
        """P7: whose books ``entry`` is in at ``at``, following the mergers known and in effect."""
        code = entry.code
        for _ in range(len(self.transfers) + 1):  # a chain is at most every transfer long
            transfer = self.transfers.get((code, entry.year))
            if transfer is None or not at.counts(
                max(entry.booked_on, transfer.effective_on), max(entry.recorded, transfer.recorded)
            ):
                return code
            code = transfer.successor
        raise AssertionError("a merger cycle")

    def _counted(self, at: Point) -> Iterable[tuple[str, Entry]]:
        for entry in self.entries:
            if at.counts(entry.booked_on, entry.recorded):
                yield self.owner(entry, at), entry

    def balance(self, code: str, year: int, at: Point = Point()) -> dict[str, Any]:
        """F2: the figures of ``GET /v1/municipalities/{code}/balances/{year}`` (money only)."""
        sums: dict[str, int] = defaultdict(int)
        by_category = dict.fromkeys(CATEGORIES, 0)
        for owner, entry in self._counted(at):
            if owner == code and entry.year == year:
                sums[entry.kind] += entry.amount_cents
                if entry.category is not None:
                    by_category[entry.category] += entry.amount_cents
        return {
            "awarded_cents": sums["awarded"],
            "advance_paid_cents": sums["advanced"],
            "spent_cents": sums["spent"],
            "spent_by_category": by_category,
            "unspent_cents": sums["advanced"] - sums["spent"],
            "spent_beyond_award_cents": max(0, sums["spent"] - sums["awarded"]),
            "settled_cents": sums["settled"],
            "reclaim_issued_cents": sums["reclaim_issued"],
            "reclaim_received_cents": sums["reclaim_received"],
        }

    def codes(self) -> set[str]:
        return {e.code for e in self.entries} | {t.successor for t in self.transfers.values()}

    def settlement_reported(self, code: str, year: int, at: Point) -> int | None:
        """F3: the reported spending of the settlements counted at ``at`` for ``code``'s year (None: none)."""
        reported = [(o, e) for o, e in self._counted(at) if e.kind == "reported" and o == code and e.year == year]
        return sum(e.amount_cents for _o, e in reported) if reported else None

    def national(self, year: int, at: Point = Point()) -> dict[str, Any]:
        """F3: the money of ``GET /v1/balances/{year}``."""
        municipalities = {}
        for code in sorted(self.codes()):
            figures = self.balance(code, year, at)
            reported = self.settlement_reported(code, year, at)
            if any(v for k, v in figures.items() if k != "spent_by_category") or reported is not None:
                municipalities[code] = {
                    **figures,
                    "settlement_reported_spending_cents": reported,
                    "settlement_differs_from_books": None if reported is None else reported != figures["spent_cents"],
                }
        totals = {k: sum(m[k] for m in municipalities.values()) for k in self.balance("GM0000", year, at)
                  if k != "spent_by_category"}
        totals["spent_by_category"] = {
            cat: sum(m["spent_by_category"][cat] for m in municipalities.values()) for cat in CATEGORIES
        }
        frame = sum(d for y, d, on, rec in self.frame_entries if y == year and at.counts(on, rec))
        libraries: dict[str, int] = {}
        for _owner, entry in self._counted(at):
            if entry.year == year and entry.category == "library_funding" and entry.library_id:
                libraries[entry.library_id] = libraries.get(entry.library_id, 0) + entry.amount_cents
        return {
            "frame_cents": frame,
            "frame_unawarded_cents": frame - totals["awarded_cents"],
            "awarded_within_frame": totals["awarded_cents"] <= frame,
            "totals": totals,
            "municipalities": municipalities,
            "library_funding_received": dict(sorted(libraries.items())),
            "settlements_differing_from_books": sum(
                bool(m["settlement_differs_from_books"]) for m in municipalities.values()
            ),
            "sisa_late": sum(self.sisa(code, year, at)["late"] for code in self.codes()),
        }

    def sisa(self, code: str, accounts_year: int, at: Point = Point()) -> dict[str, Any]:
        """F4: the lines of ``GET /v1/municipalities/{code}/sisa/{T}``."""
        judged = at.day(self.today)
        deadline = sisa_deadline(accounts_year)
        counted = [(o, e) for o, e in self._counted(at) if o == code and e.year <= accounts_year]
        years = sorted({e.year for _o, e in counted if e.kind in ("awarded", "spent")})
        lines = []
        for g in years:
            if any(d.final_account for (k, t, gy), d in self._declared(at).items()
                   if k == code and gy == g and t < accounts_year):
                continue
            spent = [e for _o, e in counted if e.year == g and e.kind == "spent"]
            declared = self._declared(at).get((code, accounts_year, g))
            late = declared.declared_on > deadline if declared else judged > deadline
            lines.append({
                "grant_year": g,
                "besteding_jaar_t_cents": sum(e.amount_cents for e in spent if e.booked_on.year == accounts_year),
                "cumulatieve_bestedingen_cents": sum(
                    e.amount_cents for e in spent if e.booked_on.year <= accounts_year
                ),
                "eindverantwoording": "Ja" if declared and declared.final_account else "Nee",
                "late": late,
            })
        return {"year": accounts_year, "deadline": deadline, "lines": lines, "late": any(x["late"] for x in lines)}

    def _declared(self, at: Point) -> dict[tuple[str, int, int], _Declaration]:
        return {k: d for k, d in self.declarations.items() if at.counts(d.declared_on, d.recorded)}

    def bridge(self, at: Point = Point()) -> dict[str, Any]:
        """F5: the money and the account statuses of ``GET /v1/bridge``."""
        sums: dict[str, dict[str, int]] = {
            lib: {"granted_cents": 0, "paid_cents": 0, "settled_cents": 0, "reclaim_issued_cents": 0}
            for lib in self.libraries
        }
        for lib, kind, amount, on, recorded in self.bridge_entries:
            if at.counts(on, recorded):
                sums[lib][kind + "_cents"] += amount
        # the frame, like a grant, is booked on the day it was recorded (ORACLE; docs/decisions.md, "Random
        # histories through the services")
        recorded = self.bridge_frame_recorded
        frame = self.bridge_frame if self.bridge_frame and (
            recorded is None or at.counts(recorded.date(), recorded)
        ) else None
        # the account deadline is a rule, not a booking: as known at the point (known_at), whatever the as_of
        deadline = self.bridge_frame[1] if self.bridge_frame and (
            recorded is None or at.known_at is None or recorded <= at.known_at
        ) else None
        judged = at.day(self.today)
        statuses = {}
        for lib, figures in sums.items():
            account = self.bridge_accounts.get(lib)
            submitted = account is not None and at.counts(account[0], account[1])
            if submitted:
                assert account is not None
                statuses[lib] = "on_time" if account[0] <= self.libraries[lib].account[1] else "late"  # type: ignore[index]
            elif figures["granted_cents"] <= 0 and figures["paid_cents"] <= 0:
                statuses[lib] = "no_grant"
            else:
                statuses[lib] = "missing" if deadline is not None and judged > deadline else "not_due"
        totals = {k: sum(f[k] for f in sums.values()) for k in
                  ("granted_cents", "paid_cents", "settled_cents", "reclaim_issued_cents")}
        return {
            "frame_cents": frame[0] if frame else 0,
            "frame_ungranted_cents": (frame[0] if frame else 0) - totals["granted_cents"],
            "totals": totals,
            "libraries": sums,
            "statuses": statuses,
            "accounts_late": sum(s == "late" for s in statuses.values()),
            "accounts_missing": sum(s == "missing" for s in statuses.values()),
        }
