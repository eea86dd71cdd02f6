"""The oracle's input: one frozen dataclass per command a person or system gives the three services.

Every command carries ``known_at``: the moment (UTC) the service records it, and the dates the
services book it on (``awarded_on``, ``paid_on``, ``booked_on``...). Codes name municipalities as CBS
codes; a grant is named by the code it was awarded to (``grant_code``), as its stream id is
(``grant-<year>-<code>``), also after a merger passed it on. Money is integer cents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class SetFrame:
    year: int
    frame_cents: int
    decided_on: date
    known_at: datetime


@dataclass(frozen=True)
class AmendFrame:
    year: int
    frame_cents: int
    decided_on: date
    known_at: datetime
    reason: str = "amended"


@dataclass(frozen=True)
class Award:
    year: int
    code: str
    name: str
    amount_cents: int
    awarded_on: date
    known_at: datetime


@dataclass(frozen=True)
class AnnexRow:
    code: str
    name: str
    amount_cents: int


@dataclass(frozen=True)
class ImportAnnex:
    year: int
    rows: tuple[AnnexRow, ...]
    awarded_on: date
    known_at: datetime


@dataclass(frozen=True)
class PayAdvance:
    year: int
    grant_code: str
    amount_cents: int
    paid_on: date
    known_at: datetime


@dataclass(frozen=True)
class Settle:
    """A settlement (vaststelling); ``corrects_latest`` names the grant's latest settlement."""

    year: int
    grant_code: str
    reported_spending_cents: int
    settled_on: date
    known_at: datetime
    settled_cents: int | None = None
    reason: str | None = None
    corrects_latest: bool = False


@dataclass(frozen=True)
class IssueReclaim:
    year: int
    grant_code: str
    amount_cents: int
    issued_on: date
    known_at: datetime


@dataclass(frozen=True)
class ReceiveReclaim:
    year: int
    grant_code: str
    amount_cents: int
    received_on: date
    known_at: datetime


@dataclass(frozen=True)
class Merge:
    code: str
    successor: str
    effective_on: date
    known_at: datetime


@dataclass(frozen=True)
class Spend:
    """One expenditure; ``library_id`` is its counterparty (the library a ``library_funding`` pays)."""

    expenditure_id: str
    code: str
    grant_year: int
    category: str
    amount_cents: int
    booked_on: date
    known_at: datetime
    library_id: str = "NL-KVK-41215098"


@dataclass(frozen=True)
class ExpenditureRow:
    expenditure_id: str
    grant_year: int
    category: str
    amount_cents: int
    booked_on: date
    library_id: str = "NL-KVK-41215098"


@dataclass(frozen=True)
class ImportExpenditures:
    """A CSV import: every row or none."""

    code: str
    rows: tuple[ExpenditureRow, ...]
    known_at: datetime


@dataclass(frozen=True)
class Reverse:
    expenditure_id: str
    known_at: datetime
    booked_on: date | None = None
    reason: str = "booked twice"


@dataclass(frozen=True)
class CloseYear:
    code: str
    year: int
    closed_on: date
    known_at: datetime


@dataclass(frozen=True)
class DeclareSisa:
    """The eindverantwoording of the line of grant ``grant_year`` in the accounts of ``accounts_year``.
    ``declared_on`` None: the municipality's own, dated the day it is recorded."""

    code: str
    accounts_year: int
    grant_year: int
    final_account: bool
    known_at: datetime
    declared_on: date | None = None


@dataclass(frozen=True)
class SetBridgeFrame:
    frame_cents: int
    account_deadline: date
    known_at: datetime


@dataclass(frozen=True)
class RegisterLibrary:
    library_id: str
    name: str
    known_at: datetime


@dataclass(frozen=True)
class SetBridgeGrant:
    """Enters a library's bridging grant, or corrects it (set, not added)."""

    library_id: str
    amount_cents: int
    known_at: datetime


@dataclass(frozen=True)
class PayBridge:
    library_id: str
    amount_cents: int
    paid_on: date
    known_at: datetime


@dataclass(frozen=True)
class SubmitBridgeAccount:
    library_id: str
    spent_cents: int
    submitted_on: date
    known_at: datetime


Command = (
    SetFrame | AmendFrame | Award | ImportAnnex | PayAdvance | Settle | IssueReclaim | ReceiveReclaim | Merge
    | Spend | ImportExpenditures | Reverse | CloseYear | DeclareSisa
    | SetBridgeFrame | RegisterLibrary | SetBridgeGrant | PayBridge | SubmitBridgeAccount
)
