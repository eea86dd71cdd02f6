"""Request and response schemas of the ledger's HTTP API (documented in the OpenAPI)."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from contracts.events.expenditures import CATEGORIES, TEXT_LIMITS
from contracts.events.fields import YEARS, cents, grant_year
from services.common.http import ServiceErrorSchema
from services.common.idempotency import KEY_TEXT, key_field


class Strict(Schema):
    class Meta:
        unknown = RAISE


def _text(field: str, **kwargs: Any) -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=1, max=TEXT_LIMITS[field]), **kwargs)


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
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))
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
    year = fields.Integer(
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


class MunicipalityBalanceOut(MoneyOut):
    municipality_code = fields.String()
    name = fields.String(allow_none=True)


class LibraryBridgeOut(Schema):
    library_id = fields.String()
    name = fields.String(allow_none=True)
    granted_cents = fields.Integer()
    paid_cents = fields.Integer()
    settled_cents = fields.Integer()
    reclaim_issued_cents = fields.Integer()


class BridgeTotalsOut(Schema):
    granted_cents = fields.Integer()
    paid_cents = fields.Integer()
    settled_cents = fields.Integer()
    reclaim_issued_cents = fields.Integer()


class BridgeOut(Schema):
    frame_cents = fields.Integer()
    frame_ungranted_cents = fields.Integer()
    libraries = fields.List(fields.Nested(LibraryBridgeOut))
    totals = fields.Nested(BridgeTotalsOut)


class LibraryFundingOut(Schema):
    library_id = fields.String()
    name = fields.String(allow_none=True)
    received_cents = fields.Integer()


class NationalOut(PointInTimeOut):
    year = fields.Integer()
    frame_cents = fields.Integer()
    awarded_within_frame = fields.Boolean()
    frame_unawarded_cents = fields.Integer()
    municipalities = fields.List(fields.Nested(MunicipalityBalanceOut))
    totals = fields.Nested(MoneyOut)
    bridge = fields.Nested(BridgeOut)
    library_funding_received = fields.List(fields.Nested(LibraryFundingOut))


class SisaOut(PointInTimeOut):
    municipality_code = fields.String()
    sisa_municipality_code = fields.String(metadata={"description": "06 + the 4-digit municipality number."})
    indicator_code = fields.String(allow_none=True)
    year = fields.Integer()
    besteding_jaar_t_cents = fields.Integer(metadata={"description": "Besteding (jaar T): spending booked in year T."})
    cumulatieve_bestedingen_cents = fields.Integer(
        metadata={"description": "Cumulatieve bestedingen tot en met (jaar T)."}
    )
    eindverantwoording = fields.String(metadata={"description": "Ja / Nee"})
    final_account = fields.Boolean()
    year_closed = fields.Boolean()
    closed_on = fields.String(allow_none=True)
