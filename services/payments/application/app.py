"""The payments application: commands on the year's scheme and the grants, and their queries.

Every command loads what it changes, lets the aggregates check their rules, and stores all new
events in ONE ``save`` (one transaction, optimistic concurrency on each aggregate's version):
nothing is ever half-applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import RecordConflictError

from contracts.identifiers import CBS_CODE, CBS_CODE_REASON
from services.common.domain.chained import envelope_of
from services.common.retry import retry_on
from services.common.year_settings import (
    DEFAULT_SETTLEMENT_RULES,
    SETTLEMENT_RULES,
    for_year,
    per_year,
    settlement_rule,
)
from services.payments.domain.annex import parse_annex
from services.payments.domain.errors import (
    AnnexRefused,
    ConcurrentChange,
    GrantNotFound,
    PaymentsConflict,
    PaymentsRuleBroken,
    RowError,
    SchemeNotFound,
)
from services.payments.domain.grant import Grant, grant_stream, grant_uuid
from services.payments.domain.money import format_euros
from services.payments.domain.scheme import FIRST_YEAR, LAST_YEAR, Allocation, GrantScheme, check_year, scheme_id
from services.payments.domain.settlement import BooksFigure, SettlementRules


@dataclass
class Outcome:
    """What a command did: ``created`` False means it found the same thing already there."""

    created: bool
    value: Any


@dataclass
class AnnexResult:
    year: int
    batch_id: str | None
    awarded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    allocated_cents: int = 0
    source_sha256: str = ""


@dataclass
class MergerResult:
    predecessor_code: str
    successor_code: str
    effective_on: str
    transferred: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)


retried = retry_on(ConcurrentChange)


def check_code(code: str, field_name: str = "municipality_code") -> None:
    if not isinstance(code, str) or not CBS_CODE.fullmatch(code):
        raise PaymentsRuleBroken(CBS_CODE_REASON, field=field_name)


class PaymentsApplication(Application[UUID]):
    name = "payments"
    # Aggregates are cached (deep-copied out, fast-forwarded from the store on every get), so
    # listing a year's ~342 grants does not replay every stream from the start each time.
    env = {"AGGREGATE_CACHE_MAXSIZE": "20000"}

    settlement_rules: Mapping[int, Mapping[str, str]] = MappingProxyType(
        per_year(DEFAULT_SETTLEMENT_RULES, settlement_rule)
    )
    """Per grant year (0: every other year), from ``IDO_SETTLEMENT_RULES``; ``create_app`` sets the configured ones."""

    def rules_of(self, year: int) -> SettlementRules:
        found = for_year(self.settlement_rules, year)
        if found is None:
            raise PaymentsRuleBroken(
                f"no settlement rules are configured for {year}: set {SETTLEMENT_RULES} (e.g. "
                f"'{year}:cap=award,reclaim=paid-minus-settled')",
                field="year",
            )
        return SettlementRules(**found)

    # --- saving -------------------------------------------------------------------------------

    def _save(self, *aggregates: Any) -> None:
        try:
            self.save(*aggregates)
        except RecordConflictError:
            raise ConcurrentChange(
                "the grant or the year's scheme was changed by someone else at the same time; nothing was "
                "stored, retry the request"
            ) from None

    # --- loading ------------------------------------------------------------------------------

    def scheme(self, year: int) -> GrantScheme:
        try:
            scheme: GrantScheme = self.repository.get(scheme_id(year))
        except AggregateNotFoundError:
            raise SchemeNotFound(f"no frame is set for {year}", field="year") from None
        return scheme

    def _scheme_exists(self, year: int) -> bool:
        return bool(self.recorder.select_events(scheme_id(year), desc=True, limit=1))

    def _grant_by_id(self, grant_id: str) -> Grant | None:
        try:
            grant: Grant = self.repository.get(grant_uuid(grant_id))
        except AggregateNotFoundError:
            return None
        return grant

    def grants(self, year: int) -> list[Grant]:
        """Every grant of the year, in the order awarded."""
        scheme = self.scheme(year)
        found = []
        for grant_id in scheme.awards:
            grant = self._grant_by_id(grant_id)
            if grant is None:  # the scheme and its grants are saved together; never happens
                raise RuntimeError(f"scheme-{year} names {grant_id}, which is not stored")
            found.append(grant)
        return found

    def grants_of(self, year: int, code: str) -> list[Grant]:
        """Grants of the year the municipality holds now or held before (merged into another)."""
        return [grant for grant in self.grants(year) if code in grant.municipality_codes]

    def grant(self, year: int, code: str) -> Grant:
        """The grant of ``code``: awarded to it, else passed to it by a merger (when exactly one)."""
        check_year(year)
        check_code(code)
        own = self._grant_by_id(grant_stream(year, code))
        if own is not None:
            return own
        if not self._scheme_exists(year):
            raise GrantNotFound(
                f"no grant of {year} for {code}: no frame is set for {year}", field="municipality_code"
            )
        held = [g for g in self.grants(year) if g.municipality_code == code]
        if len(held) == 1:
            return held[0]
        if not held:
            raise GrantNotFound(f"no grant of {year} for {code}", field="municipality_code")
        raise PaymentsConflict(
            f"{code} holds {len(held)} grants of {year} passed to it by mergers "
            f"({', '.join(g.original_municipality_code for g in held)}); address one by its original code"
        )

    def _all_grants(self) -> list[Grant]:
        """Every grant of every year with a frame."""
        return [grant for year in self.years() for grant in self.grants(year)]

    @staticmethod
    def _mergers_of(grants: Iterable[Grant]) -> dict[str, dict[str, str]]:
        """Every code that merged: its transfer ({"from", "to", "effective_on"}). A code merges once (a
        merger into another successor is refused), so one transfer of it says where it went."""
        return {transfer["from"]: transfer for grant in grants for transfer in grant.transfers}

    def mergers(self) -> dict[str, dict[str, str]]:
        return self._mergers_of(self._all_grants())

    @staticmethod
    def _merged_refusal(code: str, mergers: Mapping[str, Mapping[str, str]]) -> str | None:
        merger = mergers.get(code)
        if merger is None:
            return None
        # The grant would sit with a municipality that no longer exists: no merger passes it on, and
        # postings under the old code from the effective date are refused (docs/decisions.md).
        return (
            f"{code} merged into {merger['to']} effective {merger['effective_on']}: a merged municipality "
            f"is awarded no grant; award {merger['to']}"
        )

    def history(self, aggregate_id: UUID) -> list[dict[str, Any]]:
        return [envelope_of(event) for event in self.repository.event_store.get(aggregate_id)]

    def grant_history(self, grant: Grant) -> list[dict[str, Any]]:
        return self.history(grant.id)

    def scheme_history(self, scheme: GrantScheme) -> list[dict[str, Any]]:
        return self.history(scheme.id)

    def years(self) -> Iterator[int]:
        """The years with a frame."""
        for year in range(FIRST_YEAR, LAST_YEAR + 1):
            if self._scheme_exists(year):
                yield year

    # --- the frame ----------------------------------------------------------------------------

    @retried
    def set_frame(self, year: int, frame_cents: int, decided_on: date) -> Outcome:
        check_year(year)
        try:
            existing: GrantScheme = self.repository.get(scheme_id(year))
        except AggregateNotFoundError:
            scheme = GrantScheme.set_frame(year, frame_cents, decided_on)
            self._save(scheme)
            return Outcome(True, scheme)
        if existing.amendments == 0 and existing.frame_cents == frame_cents and existing.decided_on == (
            decided_on.isoformat()
        ):
            return Outcome(False, existing)
        raise PaymentsConflict(
            f"the frame of {year} is already set at {format_euros(existing.frame_cents)}; it changes only by an "
            f"amendment (POST /v1/years/{year}/frame/amendments)",
            field="frame_cents",
        )

    @retried
    def amend_frame(self, year: int, frame_cents: int, decided_on: date, reason: str) -> GrantScheme:
        check_year(year)
        scheme = self.scheme(year)
        scheme.amend_frame(frame_cents, decided_on, reason)
        self._save(scheme)
        return scheme

    # --- awards -------------------------------------------------------------------------------

    @retried
    def award_grant(
        self, year: int, municipality_code: str, municipality_name: str, amount_cents: int, awarded_on: date
    ) -> Outcome:
        check_year(year)
        check_code(municipality_code)
        name = municipality_name.strip()
        if not name:
            raise PaymentsRuleBroken("must not be empty", field="municipality_name")
        scheme = self.scheme(year)
        grant_id = grant_stream(year, municipality_code)
        if grant_id in scheme.awards:
            award = scheme.awards[grant_id]
            if award["amount_cents"] == amount_cents and award["municipality_name"] == name:
                existing = self._grant_by_id(grant_id)
                assert existing is not None
                return Outcome(False, existing)
            raise PaymentsConflict(
                f"{municipality_code} is already awarded {format_euros(award['amount_cents'])} for {year}; "
                "an award is not changed",
                field="municipality_code",
            )
        if (merged := self._merged_refusal(municipality_code, self.mergers())) is not None:
            raise PaymentsConflict(merged, field="municipality_code")
        grant = Grant.award(
            year=year, municipality_code=municipality_code, municipality_name=name, amount_cents=amount_cents,
            awarded_on=awarded_on, basis="single",
        )
        scheme.allocate(
            [Allocation(grant_id, municipality_code, name, amount_cents)], basis="single", awarded_on=awarded_on
        )
        self._save(scheme, grant)
        return Outcome(True, grant)

    @retried
    def import_annex(self, year: int, data: bytes, awarded_on: date) -> AnnexResult:
        """Awards every row of the annex as one batch; the same file again changes nothing.

        A file with any bad row, or whose new awards break the frame, is refused whole, with every
        bad row named.
        """
        check_year(year)
        parsed = parse_annex(data)
        scheme = self.scheme(year)
        errors = list(parsed.errors)
        mergers = self.mergers()
        file_errors: list[str] = []
        new: list[Allocation] = []
        unchanged: list[str] = []
        for row in parsed.rows:
            grant_id = grant_stream(year, row.municipality_code)
            award = scheme.awards.get(grant_id)
            if award is None:
                if (merged := self._merged_refusal(row.municipality_code, mergers)) is not None:
                    errors.append(RowError(row.line, "cbs_code", merged))
                    continue
                new.append(Allocation(grant_id, row.municipality_code, row.municipality_name, row.amount_cents))
                continue
            if award["amount_cents"] != row.amount_cents:
                errors.append(
                    RowError(
                        row.line, "amount",
                        f"{row.municipality_code} is already awarded {format_euros(award['amount_cents'])} for "
                        f"{year}, not {format_euros(row.amount_cents)}; an award is not changed by an import",
                    )
                )
            elif award["municipality_name"] != row.municipality_name:
                errors.append(
                    RowError(
                        row.line, "name",
                        f"{row.municipality_code} was awarded under the name {award['municipality_name']!r}",
                    )
                )
            else:
                unchanged.append(grant_id)
        if not parsed.rows and not parsed.errors:
            file_errors.append("the file holds no municipality rows")
        new_cents = sum(a.amount_cents for a in new)
        if scheme.awarded_cents + new_cents > scheme.frame_cents:
            file_errors.append(
                f"the new awards ({format_euros(new_cents)}) and those already made "
                f"({format_euros(scheme.awarded_cents)}) total {format_euros(scheme.awarded_cents + new_cents)}, "
                f"over the frame of {year} ({format_euros(scheme.frame_cents)}) by "
                f"{format_euros(scheme.awarded_cents + new_cents - scheme.frame_cents)}"
            )
        if errors or file_errors:
            errors.sort(key=lambda e: e.line)
            count = len({e.line for e in errors})
            summary = [f"{count} bad row(s)"] if errors else []
            raise AnnexRefused(
                f"the annex is refused whole, nothing was awarded: {'; '.join(summary + file_errors)}",
                errors,
                file_errors,
            )
        result = AnnexResult(year=year, batch_id=None, unchanged=unchanged, source_sha256=parsed.sha256)
        if not new:
            return result
        grants = [
            Grant.award(
                year=year, municipality_code=a.municipality_code, municipality_name=a.municipality_name,
                amount_cents=a.amount_cents, awarded_on=awarded_on, basis="annex",
            )
            for a in new
        ]
        result.batch_id = scheme.allocate(new, basis="annex", awarded_on=awarded_on, source_sha256=parsed.sha256)
        self._save(scheme, *grants)
        result.awarded = [a.grant_id for a in new]
        result.allocated_cents = new_cents
        return result

    # --- payments, settlement, reclaim ----------------------------------------------------------

    @retried
    def pay_advance(self, year: int, code: str, amount_cents: int, paid_on: date) -> Grant:
        grant = self.grant(year, code)
        grant.pay(amount_cents, paid_on)
        self._save(grant)
        return grant

    @retried
    def settle(
        self,
        year: int,
        code: str,
        *,
        reported_spending_cents: int | None,
        settled_on: date,
        settled_cents: int | None = None,
        corrects_event_id: str | None = None,
        reason: str | None = None,
        books: BooksFigure | None = None,
    ) -> Grant:
        grant = self.grant(year, code)
        grant.settle(
            reported_spending_cents=reported_spending_cents, settled_on=settled_on, settled_cents=settled_cents,
            corrects_event_id=corrects_event_id, reason=reason, books=books, rules=self.rules_of(year),
        )
        self._save(grant)
        return grant

    @retried
    def issue_reclaim(self, year: int, code: str, amount_cents: int, issued_on: date) -> Grant:
        grant = self.grant(year, code)
        grant.issue_reclaim(amount_cents, issued_on)
        self._save(grant)
        return grant

    @retried
    def receive_reclaim(self, year: int, code: str, amount_cents: int, received_on: date) -> Grant:
        grant = self.grant(year, code)
        grant.receive_reclaim(amount_cents, received_on)
        self._save(grant)
        return grant

    # --- mergers ------------------------------------------------------------------------------

    @retried
    def merge_municipality(self, predecessor_code: str, successor_code: str, effective_on: date) -> MergerResult:
        """Passes every open grant the predecessor holds, of any year, to the successor, in one save."""
        check_code(predecessor_code, "predecessor_code")
        check_code(successor_code, "successor_code")
        if predecessor_code == successor_code:
            raise PaymentsRuleBroken("a municipality does not merge into itself", field="successor_code")
        result = MergerResult(predecessor_code, successor_code, effective_on.isoformat())
        grants = self._all_grants()  # read once: the mergers so far, then the grants this one passes on
        mergers = self._mergers_of(grants)
        earlier = mergers.get(predecessor_code)
        if earlier is not None and earlier["to"] == successor_code:
            # this merger again: unchanged on its own date (a retry), refused on another (a merger is recorded once)
            if earlier["effective_on"] != result.effective_on:
                raise PaymentsConflict(
                    f"{predecessor_code} merged into {successor_code} effective {earlier['effective_on']}, not "
                    f"{result.effective_on}; a merger is recorded once",
                    field="effective_on",
                )
        elif (onward := mergers.get(successor_code)) is not None:
            # A grant passed to a municipality that no longer exists would sit with nobody: no merger passes
            # it further (docs/decisions.md, "A merged municipality is awarded nothing more").
            raise PaymentsConflict(
                f"{successor_code} merged into {onward['to']} effective {onward['effective_on']}: a municipality "
                f"does not merge into one that merged; merge {predecessor_code} into {onward['to']}",
                field="successor_code",
            )
        to_save: list[Grant] = []
        known = False
        for grant in grants:
            if predecessor_code not in grant.municipality_codes:
                continue
            known = True
            if grant.municipality_code == predecessor_code:
                if grant.closed:
                    result.closed.append(grant.grant_id)
                    continue
                grant.transfer(successor_code, effective_on)
                to_save.append(grant)
                result.transferred.append(grant.grant_id)
            elif any(
                t["from"] == predecessor_code and t["to"] == successor_code for t in grant.transfers
            ):
                result.unchanged.append(grant.grant_id)
            else:
                raise PaymentsConflict(
                    f"{grant.grant_id} passed from {predecessor_code} to another municipality "
                    f"({grant.municipality_code}) before",
                    field="predecessor_code",
                )
        if not known:
            raise GrantNotFound(f"no grant was ever held by {predecessor_code}", field="predecessor_code")
        if not to_save and not result.unchanged:
            # A merger is known only by the grants it passes on (_mergers_of): with none to pass it would be
            # answered as recorded while nothing was, and the merged code could still be awarded and post
            # spending (docs/decisions.md, "A merger that passes nothing on is refused").
            raise PaymentsConflict(
                f"every grant {predecessor_code} holds is closed ({', '.join(result.closed)}): a merger that "
                "passes no grant on cannot be recorded, so none was",
                field="predecessor_code",
            )
        if to_save:
            self._save(*to_save)
        return result
