"""Request and response schemas of the payments API (the OpenAPI document is generated from them)."""

from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

from contracts.envelope import EnvelopeSchema
from contracts.events.fields import cbs_code, cents, line, prose
from services.common.http import ServiceErrorSchema

ISO_DATE = {"format": "date", "example": "2024-01-15"}


class Strict(Schema):
    """Request bodies: unknown fields are refused, so a misspelt field is never silently ignored."""

    class Meta:
        unknown = RAISE


# --- requests -----------------------------------------------------------------------------------


class FrameSetRequest(Strict):
    frame_cents = cents(required=True, metadata={"example": 1_713_000_000})
    decided_on = fields.Date(required=True, metadata={"description": "Date of the decision setting the frame."})


class FrameAmendRequest(Strict):
    frame_cents = cents(required=True, metadata={"description": "The new frame, in integer euro cents."})
    decided_on = fields.Date(required=True)
    reason = prose(500, required=True)


class AwardRequest(Strict):
    municipality_code = cbs_code(required=True)
    municipality_name = line(200, required=True)
    amount_cents = cents(minimum=1, required=True, metadata={"example": 72_500_000})
    awarded_on = fields.Date(required=True)


class AnnexQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    awarded_on = fields.Date(required=True, metadata={"description": "Date of the award decision of the batch."})


class AdvanceRequest(Strict):
    amount_cents = cents(minimum=1, required=True)
    paid_on = fields.Date(required=True)


class BooksOffset(Strict):
    topic = line(249, required=True)
    partition = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))
    next_offset = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))


class BooksFigureRequest(Strict):
    spent_cents = cents(
        required=True, metadata={"description": "`spent_cents` of the ledger's settlement proposal."}
    )
    offsets = fields.List(
        fields.Nested(BooksOffset), required=True,
        metadata={"description": "The proposal's `offsets`: the consumer offsets the ledger's view was read at."},
    )


class SettlementRequest(Strict):
    reported_spending_cents = cents(
        load_default=None, allow_none=True,
        metadata={
            "description": "Spending of the year as accounted in SiSa, in cents. Default: `books.spent_cents`; "
            "required when `books` is not given."
        },
    )
    books = fields.Nested(
        BooksFigureRequest, load_default=None, allow_none=True,
        metadata={
            "description": "The ledger's own figure for the municipality and grant year, as "
            "`GET /v1/municipalities/{code}/years/{year}/settlement-proposal` (ledger) answers it. Recorded in "
            "the GrantSettled event; a reported spending that differs from it needs a `reason`, and the "
            "ledger's national view flags it."
        },
    )
    settled_cents = cents(
        load_default=None, allow_none=True,
        metadata={"description": "The settled (final) amount; by default the reported spending, at most the award."},
    )
    settled_on = fields.Date(required=True)
    corrects_event_id = fields.UUID(
        load_default=None, allow_none=True,
        metadata={"description": "For a correction: the event id of the latest settlement, which it corrects."},
    )
    reason = prose(
        500, min_length=None, load_default=None, allow_none=True,
        metadata={
            "description": "Required for a correction, for settling below the eligible maximum, and for a "
            "reported spending that differs from `books.spent_cents`."
        },
    )


class ReclaimRequest(Strict):
    amount_cents = cents(
        minimum=1, required=True, metadata={"description": "Must equal what was paid and not settled."}
    )
    issued_on = fields.Date(required=True)


class ReceiptRequest(Strict):
    amount_cents = cents(minimum=1, required=True)
    received_on = fields.Date(required=True)


class MergerRequest(Strict):
    successor_code = cbs_code(required=True, metadata={"example": "GM1992"})
    effective_on = fields.Date(required=True, metadata={"example": "2023-01-01"})


class GrantListQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    municipality_code = cbs_code(
        load_default=None, metadata={"description": "Only grants this municipality holds or held before a merger."}
    )


# --- responses ----------------------------------------------------------------------------------


class TransferSchema(Schema):
    from_ = fields.String(data_key="from", attribute="from")
    to = fields.String()
    effective_on = fields.String(metadata=ISO_DATE)


class GrantSchema(Schema):
    grant_id = fields.String(metadata={"example": "grant-2024-GM0363"})
    year = fields.Integer()
    municipality_code = fields.String(metadata={"description": "The current holder (after mergers)."})
    original_municipality_code = fields.String()
    municipality_codes = fields.List(fields.String(), metadata={"description": "Every code the grant was held by."})
    municipality_name = fields.String()
    status = fields.String(
        metadata={"enum": ["awarded", "advanced", "settled", "reclaim_issued", "closed"]},
    )
    amount_cents = fields.Integer()
    awarded_on = fields.String(metadata=ISO_DATE)
    basis = fields.String()
    paid_cents = fields.Integer()
    reported_spending_cents = fields.Integer(allow_none=True)
    settled_cents = fields.Integer(allow_none=True)
    settled_on = fields.String(allow_none=True, metadata=ISO_DATE)
    settlement_event_id = fields.String(allow_none=True, metadata={"description": "Name it to correct it."})
    settlements = fields.Integer(metadata={"description": "The settlement and its corrections."})
    books_spent_cents = fields.Integer(
        allow_none=True, metadata={"description": "The ledger's figure the latest settlement named, if any."}
    )
    settlement_rules = fields.Dict(
        keys=fields.String(), values=fields.String(),
        metadata={"description": "The rules of the latest settlement (`cap`, `reclaim`; IDO_SETTLEMENT_RULES)."},
    )
    reclaim_due_cents = fields.Integer(
        metadata={"description": "What the settlement rules reclaim: by default paid minus settled, when positive."}
    )
    reclaim_to_issue_cents = fields.Integer()
    reclaim_issued_cents = fields.Integer()
    reclaim_received_cents = fields.Integer()
    reclaim_outstanding_cents = fields.Integer()
    payable_cents = fields.Integer(metadata={"description": "Settled above what was paid: still to pay."})
    transfers = fields.List(fields.Nested(TransferSchema))
    version = fields.Integer(metadata={"description": "Position of the latest event in the grant's stream."})
    last_event_id = fields.String()
    chain_head = fields.String(metadata={"description": "Hash of the latest event (the stream's hash chain)."})


class GrantDetailSchema(GrantSchema):
    events = fields.List(fields.Nested(EnvelopeSchema), metadata={"description": "The full event history."})


class GrantListSchema(Schema):
    year = fields.Integer()
    count = fields.Integer()
    grants = fields.List(fields.Nested(GrantSchema))


class SchemeSchema(Schema):
    year = fields.Integer()
    frame_cents = fields.Integer()
    decided_on = fields.String(metadata=ISO_DATE)
    awarded_cents = fields.Integer()
    remaining_cents = fields.Integer()
    grants_awarded = fields.Integer()
    amendments = fields.Integer()
    version = fields.Integer()
    last_event_id = fields.String()
    chain_head = fields.String()


class SchemeDetailSchema(SchemeSchema):
    events = fields.List(fields.Nested(EnvelopeSchema))


class AnnexResultSchema(Schema):
    year = fields.Integer()
    batch_id = fields.String(allow_none=True, metadata={"description": "Null when nothing new was awarded."})
    awarded = fields.List(fields.String(), metadata={"description": "Grant ids awarded by this import."})
    unchanged = fields.List(fields.String(), metadata={"description": "Rows already awarded identically."})
    allocated_cents = fields.Integer()
    source_sha256 = fields.String()


class MergerResultSchema(Schema):
    predecessor_code = fields.String()
    successor_code = fields.String()
    effective_on = fields.String(metadata=ISO_DATE)
    transferred = fields.List(fields.String(), metadata={"description": "Grants passed to the successor now."})
    unchanged = fields.List(fields.String(), metadata={"description": "Grants passed to it by this merger before."})
    closed = fields.List(fields.String(), metadata={"description": "Closed grants, which stay with the predecessor."})


PaymentsErrorSchema = ServiceErrorSchema  # one error body for every service, defined where it is written


class RowErrorSchema(Schema):
    line = fields.Integer()
    field = fields.String(metadata={"example": "amount"})
    reason = fields.String()


class AnnexErrorSchema(PaymentsErrorSchema):
    rows = fields.List(fields.Nested(RowErrorSchema), metadata={"description": "Every bad row of the file."})
