"""Request and response schemas of the ledger's HTTP API (documented in the OpenAPI)."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from contracts.events.expenditures import CATEGORIES, TEXT_LIMITS
from contracts.events.fields import YEARS, AsciiInteger, cents, grant_year, line, prose
from services.common.http import ServiceErrorSchema
from services.common.idempotency import KEY_TEXT, key_field
from services.ledger.read_side import ACCOUNT_STATUSES


class Strict(Schema):
    class Meta:
        unknown = RAISE


def _text(field: str, **kwargs: Any) -> fields.String:
    if field == "description":
        return prose(TEXT_LIMITS[field], required=True, **kwargs)
    return line(TEXT_LIMITS[field], required=True, **kwargs)


# The bounds below are the published ones (contracts.events.expenditures), declared here so the OpenAPI
# document shows them; the rules that decide are services/ledger/domain/rules.py, which
# Expenditure.record applies to every posting (blank or control characters, a booking date outside
# the grant year, a library_funding counterparty that is no organisation id).
class CounterpartyIn(Strict):
    id = _text(
        "counterparty.id",
        metadata={"description": "For library_funding the library's identifier (e.g. NL-KVK-41215098)."},
    )
    name = _text("counterparty.name")


class ExpenditureIn(Strict):
    grant_year = grant_year(required=True)
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    amount_cents = cents(minimum=1, required=True)
    booked_on = fields.Date(required=True, metadata={"description": "Within the grant year."})
    counterparty = fields.Nested(CounterpartyIn, required=True)
    description = _text("description")
    reference = _text("reference")


class IdempotencyHeaders(Schema):
    idempotency_key = key_field(
        KEY_TEXT
        + "If the first request does not answer within 10 s (the service stopped during it), a retry runs it "
        "again and answers as the first time (the ids of what it stores derive from the key). A posting keeps no "
        "separate answer: its retry is answered from the expenditure stored under the key (its fields compared, "
        "not the body bytes), without `Idempotent-Replayed`."
    )


class ReversalIn(Strict):
    reason = prose(500, required=True)
    booked_on = fields.Date(
        load_default=None,
        metadata={
            "description": "Booking day of the reversal, within the grant year and not before the expenditure's "
            "own booking day. Default: today if it is such a day, else the expenditure's own booking day (so a "
            "reversal after the grant year books on the date of the expenditure it reverses)."
        },
    )


class CloseYearIn(Strict):
    final_account = fields.Boolean(
        required=True, metadata={"description": "True when this is the final account (SiSa Eindverantwoording Ja)."}
    )
    closed_on = fields.Date(load_default=None, metadata={"description": "Default today."})


class PointInTimeQuery(Schema):
    as_of = fields.Date(metadata={"description": "The books by booking date at the end of this day."})
    known_at = fields.AwareDateTime(
        metadata={"description": "The books as recorded by this moment (with a time zone)."}
    )
    includes_event_id = fields.UUID(
        metadata={"description": "Wait (bounded) until this event is projected, else 503 with Retry-After."}
    )


class JournalQuery(PointInTimeQuery):
    year = AsciiInteger(
        validate=YEARS, metadata={"description": "Only this grant year."}
    )


LedgerErrorSchema = ServiceErrorSchema  # one error body for every service, defined where it is written


class ExpenditureRecordedOut(Schema):
    expenditure_id = fields.UUID(required=True)
    event_id = fields.UUID(required=True)
    stream_id = fields.String()
    municipality_code = fields.String()
    grant_year = fields.Integer()


class ExpenditureOut(Schema):
    expenditure_id = fields.UUID()
    municipality_code = fields.String()
    grant_year = fields.Integer()
    category = fields.String()
    amount_cents = fields.Integer()
    booked_on = fields.String()
    counterparty = fields.Nested(CounterpartyIn)
    description = fields.String()
    reference = fields.String()
    event_id = fields.UUID()
    reversed = fields.Boolean()
    reversal_event_id = fields.UUID(allow_none=True)


class ReversalOut(Schema):
    expenditure_id = fields.UUID()
    event_id = fields.UUID()
    reverses_event_id = fields.UUID()


class YearClosedOut(Schema):
    municipality_code = fields.String()
    grant_year = fields.Integer()
    event_id = fields.UUID()
    closed_on = fields.String()
    closed_by = fields.String()
    final_account = fields.Boolean()


class ImportedRow(Schema):
    line = fields.Integer()
    expenditure_id = fields.UUID()
    event_id = fields.UUID()


class ImportOut(Schema):
    count = fields.Integer()
    expenditures = fields.List(fields.Nested(ImportedRow))


class OffsetOut(Schema):
    topic = fields.String()
    partition = fields.Integer()
    next_offset = fields.Integer()


class CategoriesOut(Schema):
    library_funding = fields.Integer()
    promotion = fields.Integer()
    network_orchestration = fields.Integer()


class MoneyOut(Schema):
    awarded_cents = fields.Integer()
    advance_paid_cents = fields.Integer()
    spent_by_category = fields.Nested(CategoriesOut)
    spent_cents = fields.Integer()
    unspent_cents = fields.Integer(
        metadata={"description": "Advance paid minus spent (negative: spent more than paid)."}
    )
    spent_beyond_award_cents = fields.Integer()
    settled_cents = fields.Integer()
    reclaim_issued_cents = fields.Integer()
    reclaim_received_cents = fields.Integer()


class PointInTimeOut(Schema):
    as_of = fields.String(allow_none=True)
    known_at = fields.String(allow_none=True)
    offsets = fields.List(fields.Nested(OffsetOut), metadata={"description": "The Kafka offsets this answer reflects."})


class BalancesOut(MoneyOut, PointInTimeOut):
    municipality_code = fields.String()
    year = fields.Integer()
    recorded_after_close_count = fields.Integer(
        metadata={
            "description": "Postings and reversals of the year recorded after its close (the ledger refuses them; "
            "one here broke the rule and needs looking at). Their money is in the figures above."
        }
    )
    recorded_after_close_event_ids = fields.List(
        fields.String(), metadata={"description": "Their event ids, sorted."}
    )


class MunicipalityBalanceOut(MoneyOut):
    municipality_code = fields.String()
    name = fields.String(allow_none=True)
    settlement_reported_spending_cents = fields.Integer(
        allow_none=True,
        metadata={
            "description": "The spending the settlement was made on; null before settling, and null for a "
            "municipality whose grants of the year a merger passed on (from its effective date: the successor "
            "holds the settlement)."
        },
    )
    settlement_differs_from_books = fields.Boolean(
        allow_none=True,
        metadata={"description": "The settlement's reported spending differs from the ledger's spent_cents."},
    )
    sisa = fields.Nested(
        "SisaStatusOut", allow_none=True, metadata={"description": "The SiSa account of this accounts year."}
    )


class LibraryBridgeOut(Schema):
    library_id = fields.String()
    name = fields.String(allow_none=True)
    granted_cents = fields.Integer()
    paid_cents = fields.Integer()
    settled_cents = fields.Integer(metadata={"description": (
        "What the final account settles: the spending it reports, at most what was paid (paid = settled + "
        "reclaim issued)."
    )})
    reclaim_issued_cents = fields.Integer()
    account_status = fields.String(
        validate=validate.OneOf(ACCOUNT_STATUSES),
        metadata={
            "description": "The library's final account on the day judged (as_of, else the day of known_at, "
            "else today): on_time, late (submitted after the account deadline), missing (not submitted, the "
            "deadline passed), not_due (not submitted, the deadline not passed) or no_grant (none expected)."
        },
    )
    account_submitted_on = fields.String(
        allow_none=True, metadata={"format": "date", "description": "When the account was submitted."}
    )
    account_deadline = fields.String(
        allow_none=True,
        metadata={
            "format": "date",
            "description": "The deadline the account is judged against (its own when submitted); null when no "
            "account is expected or no frame is set.",
        },
    )


class BridgeTotalsOut(Schema):
    granted_cents = fields.Integer()
    paid_cents = fields.Integer()
    settled_cents = fields.Integer()
    reclaim_issued_cents = fields.Integer()


class BridgeOut(Schema):
    frame_cents = fields.Integer()
    frame_ungranted_cents = fields.Integer()
    account_deadline = fields.String(
        allow_none=True, metadata={"format": "date", "description": "The frame's account deadline in force."}
    )
    accounts_late = fields.Integer(metadata={"description": "Libraries whose account was submitted late."})
    accounts_missing = fields.Integer(
        metadata={"description": "Libraries with a grant whose account is not submitted, the deadline passed."}
    )
    libraries = fields.List(fields.Nested(LibraryBridgeOut))
    totals = fields.Nested(BridgeTotalsOut)


class BridgeBalancesOut(BridgeOut, PointInTimeOut):
    """The bridging subsidy on its own, as the KB reads it."""


class LibraryFundingOut(Schema):
    library_id = fields.String()
    name = fields.String(allow_none=True)
    received_cents = fields.Integer()


class NationalOut(PointInTimeOut):
    year = fields.Integer()
    frame_cents = fields.Integer()
    awarded_within_frame = fields.Boolean()
    frame_unawarded_cents = fields.Integer()
    settlements_differing_from_books = fields.Integer()
    sisa_late = fields.Integer(metadata={"description": "Municipalities whose SiSa account of the year is late."})
    municipalities = fields.List(
        fields.Nested(MunicipalityBalanceOut),
        metadata={
            "description": "Every municipality with figures of the year, or with a line in its SiSa account of "
            "the year (then with zeros where it has no figures), so that each late account counted in "
            "`sisa_late` has its row."
        },
    )
    totals = fields.Nested(MoneyOut)
    bridge = fields.Nested(BridgeOut)
    library_funding_received = fields.List(fields.Nested(LibraryFundingOut))


class IndicatorCodesOut(Schema):
    besteding = fields.String()
    cumulatief = fields.String()
    eindverantwoording = fields.String()


class SisaLineOut(Schema):
    grant_year = fields.Integer(metadata={"description": "The grant decision's year G (at most the accounts year T)."})
    indicator_codes = fields.Nested(
        IndicatorCodesOut, allow_none=True,
        metadata={"description": "From the setting IDO_SISA_INDICATORS for G; null when it names none."},
    )
    besteding_jaar_t_cents = fields.Integer(metadata={"description": "Spending booked in year T on G's grant."})
    cumulatieve_bestedingen_cents = fields.Integer(
        metadata={"description": "Spending booked on G's grant up to and including T."}
    )
    eindverantwoording = fields.String(metadata={"description": "Ja / Nee, as the municipality declared it."})
    declared = fields.Boolean()
    declared_on = fields.String(allow_none=True)
    declared_by = fields.String(allow_none=True, metadata={"description": "municipality, or ministry on its behalf."})
    declaration_reason = fields.String(allow_none=True)
    late = fields.Boolean(metadata={"description": "Declared after 15 July of T+1, or not declared while past it."})


class SisaStatusOut(Schema):
    accounts_year = fields.Integer()
    deadline = fields.String(metadata={"description": "15 July of the accounts year + 1."})
    declared = fields.Boolean(metadata={"description": "Every line is declared."})
    late = fields.Boolean(metadata={"description": "Any line is late."})


class SisaOut(PointInTimeOut, SisaStatusOut):
    municipality_code = fields.String()
    sisa_municipality_code = fields.String(metadata={"description": "06 + the 4-digit municipality number."})
    indicator_code = fields.String(allow_none=True, metadata={"description": "The besteding code of T's own grant."})
    indicator_setting = fields.String(metadata={"description": "The setting that holds the codes per grant year."})
    year = fields.Integer(metadata={"description": "The accounts year T."})
    besteding_jaar_t_cents = fields.Integer(
        metadata={"description": "Besteding (jaar T) of T's own grant (G = T); every grant's in `lines`."}
    )
    cumulatieve_bestedingen_cents = fields.Integer(
        metadata={"description": "Cumulatieve bestedingen t/m (jaar T) of T's own grant; never across grant years."}
    )
    eindverantwoording = fields.String(metadata={"description": "Ja / Nee of T's own grant, as declared."})
    final_account = fields.Boolean()
    year_closed = fields.Boolean()
    closed_on = fields.String(allow_none=True)
    lines = fields.List(fields.Nested(SisaLineOut), metadata={"description": "One line per grant decision."})


class SisaDeclarationIn(Strict):
    grant_year = grant_year(required=True, metadata={"description": "The grant decision's year G (G <= T)."})
    final_account = fields.Boolean(required=True, metadata={"description": "Eindverantwoording Ja (true) or Nee."})
    declared_on = fields.Date(
        load_default=None,
        metadata={
            "description": "Only the ministry, declaring on the municipality's behalf: the day the municipality "
            "declared it. A municipality's own declaration is dated the day it is recorded."
        },
    )
    reason = prose(
        500, load_default=None,
        metadata={"description": "Required when the ministry declares on the municipality's behalf."},
    )


class SisaDeclarationOut(Schema):
    municipality_code = fields.String()
    accounts_year = fields.Integer()
    grant_year = fields.Integer()
    final_account = fields.Boolean()
    declared_on = fields.String()
    declared_by = fields.String()
    reason = fields.String(allow_none=True)
    event_id = fields.UUID()


class BooksOut(Schema):
    spent_cents = fields.Integer()
    offsets = fields.List(fields.Nested(OffsetOut))


class SettlementProposalOut(PointInTimeOut):
    municipality_code = fields.String()
    year = fields.Integer()
    spent_cents = fields.Integer(metadata={"description": "The ledger's own spending figure for the grant year."})
    awarded_cents = fields.Integer()
    advance_paid_cents = fields.Integer()
    settled_cents = fields.Integer()
    books = fields.Nested(
        BooksOut,
        metadata={"description": "Pass as `books` to payments' POST .../settlements to settle from the books."},
    )
