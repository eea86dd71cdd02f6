"""The events the services record for the commands the oracle accepts, as hash-chained envelopes
(``tests.ledger.events.Streams``), to feed the real projection without HTTP or a broker.

This is test plumbing, not a rule: it writes each event's payload as the contracts
(``contracts/events/``) describe it, asking the oracle's state only for what the services would know
(a grant's holder, the reversal's day, which annex rows are new).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from tests.ledger.events import Streams
from tests.oracle import commands as c
from tests.oracle.model import Accepted, Oracle, Verdict


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Recorder:
    """Applies each command to the oracle and, when it is accepted, records its events."""

    oracle: Oracle = field(default_factory=Oracle)
    streams: Streams = field(default_factory=lambda: Streams(""))
    recorded_ids: dict[str, str] = field(default_factory=dict)  # expenditure id -> its event id
    settlement_ids: dict[tuple[int, str], str] = field(default_factory=dict)
    bridge_grant_ids: dict[str, str] = field(default_factory=dict)

    def apply(self, command: c.Command) -> Verdict:
        before = self._before(command)
        verdict = self.oracle.apply(command)
        if isinstance(verdict, Accepted):
            self._record(command, before)
        return verdict

    def _before(self, command: c.Command) -> Any:
        o = self.oracle
        if isinstance(command, c.Merge):
            return [(y, g) for (y, g), grant in o.grants.items() if grant.holder == command.code]
        if isinstance(command, (c.Award, c.ImportAnnex)):
            return o._awarded(command.year), o.frames.get(command.year, 0), set(o.grants)
        if isinstance(command, c.AmendFrame):
            return o.frames.get(command.year)
        if isinstance(command, c.Reverse) and command.expenditure_id in o.expenditures:
            return command.booked_on or o.reversal_day(command.expenditure_id, command.known_at.date())
        if isinstance(command, c.SetBridgeGrant) and command.library_id in o.libraries:
            return sum(lib.granted_cents for lib in o.libraries.values())
        if isinstance(command, c.SetFrame):
            return command.year in o.frames
        if isinstance(command, c.DeclareSisa):
            return (command.code, command.accounts_year, command.grant_year) in o.declarations
        return None

    def _event(self, event_type: str, stream: str, key: str, at: datetime, **payload: Any) -> dict[str, Any]:
        return self.streams.event(event_type, stream, key, stamp(at), **payload)

    def _record(self, cmd: c.Command, before: Any) -> None:  # noqa: C901 (one branch per command)
        o, at = self.oracle, cmd.known_at
        if isinstance(cmd, c.SetFrame):
            if not before:
                self._event("GrantFrameSet", f"scheme-{cmd.year}", f"scheme-{cmd.year}", at, year=cmd.year,
                            frame_cents=cmd.frame_cents, decided_on=cmd.decided_on.isoformat())
        elif isinstance(cmd, c.AmendFrame):
            self._event("GrantFrameAmended", f"scheme-{cmd.year}", f"scheme-{cmd.year}", at, year=cmd.year,
                        frame_cents=cmd.frame_cents, previous_frame_cents=before,
                        decided_on=cmd.decided_on.isoformat(), reason=cmd.reason)
        elif isinstance(cmd, (c.Award, c.ImportAnnex)):
            annex = (c.AnnexRow(cmd.code, cmd.name, cmd.amount_cents),) if isinstance(cmd, c.Award) else cmd.rows
            awarded, frame, existing = before
            new = [r for r in annex if (cmd.year, r.code) not in existing]
            if not new:
                return
            basis = "single" if isinstance(cmd, c.Award) else "annex"
            awards = [{"grant_id": f"grant-{cmd.year}-{r.code}", "municipality_code": r.code,
                       "municipality_name": r.name, "amount_cents": r.amount_cents} for r in new]
            allocated = sum(r.amount_cents for r in new)
            self._event("FrameAllocated", f"scheme-{cmd.year}", f"scheme-{cmd.year}", at, year=cmd.year,
                        batch_id=str(uuid.uuid4()), basis=basis, awarded_on=cmd.awarded_on.isoformat(),
                        source_sha256=None if basis == "single" else "0" * 64, awards=awards,
                        allocated_cents=allocated, awarded_cents=awarded + allocated, frame_cents=frame)
            for r in new:
                self._event("GrantAwarded", f"grant-{cmd.year}-{r.code}", r.code, at,
                            grant_id=f"grant-{cmd.year}-{r.code}", year=cmd.year, municipality_code=r.code,
                            municipality_name=r.name, amount_cents=r.amount_cents,
                            awarded_on=cmd.awarded_on.isoformat(), basis=basis)
        elif isinstance(cmd, c.PayAdvance):
            self._grant_event(cmd, "AdvancePaid", amount_cents=cmd.amount_cents, paid_on=cmd.paid_on.isoformat())
        elif isinstance(cmd, c.Settle):
            grant = o.grants[(cmd.year, cmd.grant_code)]
            envelope = self._grant_event(
                cmd, "GrantSettled", reported_spending_cents=cmd.reported_spending_cents,
                settled_cents=grant.settled_cents, settled_on=cmd.settled_on.isoformat(),
                corrects_event_id=self.settlement_ids.get((cmd.year, cmd.grant_code)), reason=cmd.reason,
                books_spent_cents=None, books_offsets=None, rules={"cap": "award", "reclaim": "paid-minus-settled"},
            )
            self.settlement_ids[(cmd.year, cmd.grant_code)] = envelope["event_id"]
        elif isinstance(cmd, c.IssueReclaim):
            self._grant_event(cmd, "ReclaimIssued", amount_cents=cmd.amount_cents, issued_on=cmd.issued_on.isoformat())
        elif isinstance(cmd, c.ReceiveReclaim):
            self._grant_event(cmd, "ReclaimReceived", amount_cents=cmd.amount_cents,
                              received_on=cmd.received_on.isoformat())
        elif isinstance(cmd, c.Merge):
            for year, grant_code in before:
                self._event("GrantTransferred", f"grant-{year}-{grant_code}", grant_code, at,
                            grant_id=f"grant-{year}-{grant_code}", year=year, municipality_code=cmd.successor,
                            from_municipality_code=cmd.code, effective_on=cmd.effective_on.isoformat())
        elif isinstance(cmd, (c.Spend, c.ImportExpenditures)):
            rows = cmd.rows if isinstance(cmd, c.ImportExpenditures) else (
                c.ExpenditureRow(cmd.expenditure_id, cmd.grant_year, cmd.category, cmd.amount_cents, cmd.booked_on,
                                 cmd.library_id),)
            for row in rows:
                envelope = self._event(
                    "ExpenditureRecorded", f"expenditure-{row.expenditure_id}", cmd.code, at,
                    expenditure_id=row.expenditure_id, municipality_code=cmd.code, grant_year=row.grant_year,
                    category=row.category, amount_cents=row.amount_cents, booked_on=row.booked_on.isoformat(),
                    counterparty={"id": row.library_id, "name": "Bibliotheek"}, description="IDO",
                    reference=row.expenditure_id[-6:],
                )
                self.recorded_ids[row.expenditure_id] = envelope["event_id"]
        elif isinstance(cmd, c.Reverse):
            e = o.expenditures[cmd.expenditure_id]
            day: date = before
            self._event("ExpenditureReversed", f"expenditure-{cmd.expenditure_id}", e.code, at,
                        expenditure_id=cmd.expenditure_id, municipality_code=e.code, grant_year=e.grant_year,
                        reverses_event_id=self.recorded_ids[cmd.expenditure_id], amount_cents=e.amount_cents,
                        category=e.category, booked_on=day.isoformat(), reason=cmd.reason)
        elif isinstance(cmd, c.CloseYear):
            self._event("YearClosed", f"books-{cmd.code}-{cmd.year}", cmd.code, at, municipality_code=cmd.code,
                        grant_year=cmd.year, closed_on=cmd.closed_on.isoformat(), closed_by="ministry",
                        final_account=False)
        elif isinstance(cmd, c.DeclareSisa):
            if before:  # the same declaration again: nothing recorded
                return
            declared = o.declarations[(cmd.code, cmd.accounts_year, cmd.grant_year)]
            self._event("SisaLineDeclared", f"sisa-{cmd.code}-{cmd.accounts_year}-{cmd.grant_year}", cmd.code, at,
                        municipality_code=cmd.code, accounts_year=cmd.accounts_year, grant_year=cmd.grant_year,
                        final_account=cmd.final_account, declared_on=declared.declared_on.isoformat(),
                        declared_by="municipality", reason=None)
        else:
            self._record_bridge(cmd, before)

    def _grant_event(self, cmd: c.PayAdvance | c.Settle | c.IssueReclaim | c.ReceiveReclaim, event_type: str,
                     **payload: Any) -> dict[str, Any]:
        holder = self.oracle.grants[(cmd.year, cmd.grant_code)].holder
        grant_id = f"grant-{cmd.year}-{cmd.grant_code}"
        return self._event(event_type, grant_id, cmd.grant_code, cmd.known_at, grant_id=grant_id, year=cmd.year,
                           municipality_code=holder, **payload)

    def _record_bridge(self, cmd: c.Command, before: Any) -> None:
        o, at = self.oracle, cmd.known_at
        if isinstance(cmd, c.SetBridgeFrame):
            self._event("BridgeFrameSet", "bridge-frame", "bridge-frame", at, frame_cents=cmd.frame_cents,
                        rate_cents_per_inhabitant="15", account_period_start="2019-01-01",
                        spending_deadline="2023-05-01", account_deadline=cmd.account_deadline.isoformat())
        elif isinstance(cmd, c.RegisterLibrary):
            self._event("LibraryRegistered", f"library-{cmd.library_id}", cmd.library_id, at,
                        library_id=cmd.library_id, name=cmd.name, service_area=[])
        elif isinstance(cmd, c.SetBridgeGrant):
            envelope = self._event(
                "BridgeGrantSet", f"library-{cmd.library_id}", cmd.library_id, at, library_id=cmd.library_id,
                amount_cents=cmd.amount_cents, inhabitants=0, basis="entered", batch_id=None,
                rate_cents_per_inhabitant=None, corrects_event_id=self.bridge_grant_ids.get(cmd.library_id),
                reason="entered",
            )
            self.bridge_grant_ids[cmd.library_id] = envelope["event_id"]
            assert o.bridge_frame is not None
            self._event("BridgeCommitmentChanged", "bridge-frame", "bridge-frame", at,
                        committed_cents=sum(lib.granted_cents for lib in o.libraries.values()),
                        previous_committed_cents=before, frame_cents=o.bridge_frame[0], batch_id=None,
                        single_grant_library_id=cmd.library_id)
        elif isinstance(cmd, c.PayBridge):
            self._event("BridgePaymentMade", f"library-{cmd.library_id}", cmd.library_id, at,
                        library_id=cmd.library_id, amount_cents=cmd.amount_cents, paid_on=cmd.paid_on.isoformat(),
                        payment_batch_id=None)
        elif isinstance(cmd, c.SubmitBridgeAccount):
            library = o.libraries[cmd.library_id]
            assert o.bridge_frame is not None
            deadline = o.bridge_frame[1]
            unspent = library.paid_cents - min(cmd.spent_cents, library.paid_cents)
            account = self._event(
                "BridgeAccountSubmitted", f"library-{cmd.library_id}", cmd.library_id, at,
                library_id=cmd.library_id, grant_cents=library.granted_cents, paid_cents=library.paid_cents,
                spent_cents=cmd.spent_cents, unspent_cents=unspent, period_start="2019-01-01",
                period_end="2023-05-01", submitted_on=cmd.submitted_on.isoformat(),
                account_deadline=deadline.isoformat(), late=cmd.submitted_on > deadline,
            )
            if unspent:
                self._event("BridgeReclaimIssued", f"library-{cmd.library_id}", cmd.library_id, at,
                            library_id=cmd.library_id, amount_cents=unspent, issued_on=self.oracle.today.isoformat(),
                            account_event_id=account["event_id"])
        else:
            raise AssertionError(f"no events written for {cmd!r}")
