"""The municipality's SiSa declaration of one grant line: its eindverantwoording (final account Ja/Nee).

SiSa reports each grant decision on its own line: in the accounts of year T, the grant of year G
(G <= T). The eindverantwoording of a line is the municipality's own declaration in its accounts (its
auditor checks it; BZK settles on it), so the municipality declares it; the ministry may record it
on the municipality's behalf, only with a reason. One stream per line, ``sisa-<code>-<T>-<G>``,
declared once (a later SiSa correction is not modelled yet).

The SiSa account of year T is due at CBS by 15 July of T+1 (Regeling informatieverstrekking sisa,
art. 2): a line declared after that day, or not declared by it, is late (``read_side/answers.py``).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any
from uuid import UUID

from contracts.text import text_problem
from services.common.domain.chained import ChainedAggregate, stream_uuid
from services.ledger.domain.errors import AlreadyDeclared, InvalidExpenditure

PRODUCER = "ledger"
DECLARERS = ("municipality", "ministry")


def sisa_stream(municipality_code: str, accounts_year: int, grant_year: int) -> str:
    return f"sisa-{municipality_code}-{accounts_year}-{grant_year}"


def sisa_line_id(municipality_code: str, accounts_year: int, grant_year: int) -> UUID:
    return stream_uuid(sisa_stream(municipality_code, accounts_year, grant_year))


class SisaLine(ChainedAggregate):
    TOPIC = "ido:SisaLine"
    PRODUCER = PRODUCER

    if TYPE_CHECKING:
        municipality_code: str
        accounts_year: int
        grant_year: int
        final_account: bool
        declared_on: str
        declared_by: str
        reason: str | None
        declared_event_id: str

    class Declared(ChainedAggregate.Created):
        EVENT_TYPE = "SisaLineDeclared"
        municipality_code: str
        accounts_year: int
        grant_year: int
        final_account: bool
        declared_on: str
        declared_by: str
        reason: str | None

        def apply(self, aggregate: Any) -> None:
            for name in ("municipality_code", "accounts_year", "grant_year", "final_account", "declared_on",
                         "declared_by", "reason"):
                setattr(aggregate, name, getattr(self, name))
            aggregate.declared_event_id = self.event_id

    def same_as(self, final_account: bool, declared_by: str) -> bool:
        """A retry of this declaration (so it is answered, not refused)."""
        return self.final_account == final_account and self.declared_by == declared_by

    @classmethod
    def declare(
        cls,
        *,
        existing: SisaLine | None,
        municipality_code: str,
        accounts_year: int,
        grant_year: int,
        final_account: bool,
        declared_on: date,
        declared_by: str,
        reason: str | None,
        today: date,
    ) -> SisaLine:
        """``existing``: the line as loaded now (None while undeclared); a line is declared once."""
        if existing is not None:
            raise AlreadyDeclared(
                f"the SiSa line of grant year {grant_year} in the accounts of {accounts_year} was declared on "
                f"{existing.declared_on} by the {existing.declared_by}",
                field="grant_year",
            )
        if declared_by not in DECLARERS:
            raise ValueError(f"a SiSa line is declared by {' or '.join(DECLARERS)}, not {declared_by}")
        if grant_year > accounts_year:
            raise InvalidExpenditure(
                f"the accounts of {accounts_year} hold no line for the later grant year {grant_year}",
                field="grant_year",
            )
        if declared_on > today:
            raise InvalidExpenditure(f"must not be after today ({today})", field="declared_on")
        if declared_on.year <= accounts_year:
            raise InvalidExpenditure(
                f"the SiSa account of {accounts_year} is declared after the year ends, not on {declared_on}",
                field="declared_on",
            )
        if reason is not None and (problem := text_problem(reason, multi_line=True)):
            raise InvalidExpenditure(problem, field="reason")
        reason = reason.strip() if reason and reason.strip() else None
        if declared_by == "ministry" and reason is None:
            raise InvalidExpenditure(
                "the ministry declares on the municipality's behalf only with a reason", field="reason"
            )
        return cls._start(
            cls.Declared,
            stream_id=sisa_stream(municipality_code, accounts_year, grant_year),
            partition_key=municipality_code,
            municipality_code=municipality_code,
            accounts_year=accounts_year,
            grant_year=grant_year,
            final_account=final_account,
            declared_on=declared_on.isoformat(),
            declared_by=declared_by,
            reason=reason,
        )
