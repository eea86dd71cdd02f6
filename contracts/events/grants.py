"""Events on ido.grants.v1: the specific grant (SPUK IDO) from frame to reclaim."""

from __future__ import annotations

from marshmallow import fields, validate

from contracts.events.contract import EventContract
from contracts.events.fields import Payload, WholeMatch, cbs_code, cents, grant_year, text
from contracts.identifiers import SHA256_HEX_PATTERN
from contracts.topics import GRANTS


class GrantFrameSetPayload(Payload):
    year = grant_year(required=True)
    frame_cents = cents(required=True)
    decided_on = fields.Date(required=True)


class GrantFrameAmendedPayload(Payload):
    year = grant_year(required=True)
    frame_cents = cents(required=True)
    previous_frame_cents = cents(required=True)
    decided_on = fields.Date(required=True)
    reason = text(required=True)


class AllocatedAward(Payload):
    grant_id = text(None, required=True, metadata={"example": "grant-2024-GM0363"})
    municipality_code = cbs_code(required=True)
    municipality_name = text(200, required=True)
    amount_cents = cents(minimum=1, required=True)


class FrameAllocatedPayload(Payload):
    """On the year's scheme stream: one batch of awards (an annex import, or one single award).

    Each award is also a `GrantAwarded` on its own grant stream, stored in the same transaction.
    """

    year = grant_year(required=True)
    batch_id = fields.UUID(required=True)
    basis = fields.String(required=True, validate=validate.OneOf(["annex", "single"]))
    awarded_on = fields.Date(required=True)
    source_sha256 = fields.String(
        required=True, allow_none=True, validate=WholeMatch(SHA256_HEX_PATTERN),
        metadata={"description": "SHA-256 of the imported annex file; null for a single award."},
    )
    awards = fields.List(fields.Nested(AllocatedAward), required=True, validate=validate.Length(min=1))
    allocated_cents = cents(minimum=1, required=True, metadata={"description": "Sum of this batch."})
    awarded_cents = cents(required=True, metadata={"description": "Sum of all awards of the year, after this batch."})
    frame_cents = cents(required=True)


class GrantAwardedPayload(Payload):
    grant_id = text(None, required=True, metadata={"example": "grant-2024-GM0363"})
    year = grant_year(required=True)
    municipality_code = cbs_code(required=True)
    municipality_name = text(200, required=True)
    amount_cents = cents(minimum=1, required=True)
    awarded_on = fields.Date(required=True)
    basis = fields.String(required=True, validate=validate.OneOf(["annex", "single"]))


class AdvancePaidPayload(Payload):
    grant_id = text(None, required=True)
    year = grant_year(required=True)
    municipality_code = cbs_code(required=True)
    amount_cents = cents(minimum=1, required=True)
    paid_on = fields.Date(required=True)


class BooksOffset(Payload):
    topic = text(None, required=True)
    partition = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))
    next_offset = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))


class SettlementRulesPayload(Payload):
    cap = text(
        None, required=True,
        metadata={"description": "award: at most the award; none: no cap beyond the reported spending."},
    )
    reclaim = text(
        None, required=True,
        metadata={"description": "paid-minus-settled: reclaim what was paid and not settled; none."},
    )


class GrantSettledPayload(Payload):
    grant_id = text(None, required=True)
    year = grant_year(required=True)
    municipality_code = cbs_code(required=True)
    reported_spending_cents = cents(required=True)
    settled_cents = cents(required=True)
    settled_on = fields.Date(required=True)
    corrects_event_id = fields.UUID(
        required=True, allow_none=True,
        metadata={"description": "The settlement event this one corrects; null for the first."},
    )
    reason = text(allow_none=True, load_default=None)
    # Added in issue 15 (optional: settlements recorded before carry none of them).
    books_spent_cents = cents(
        allow_none=True, load_default=None,
        metadata={"description": "The ledger's own spending figure the settlement was proposed with, if named."},
    )
    books_offsets = fields.List(
        fields.Nested(BooksOffset), allow_none=True, load_default=None,
        metadata={"description": "The ledger's consumer offsets that figure was read at."},
    )
    rules = fields.Nested(
        SettlementRulesPayload, allow_none=True, load_default=None,
        metadata={"description": "The year's settlement rules the settlement was made under (IDO_SETTLEMENT_RULES)."},
    )


class ReclaimIssuedPayload(Payload):
    grant_id = text(None, required=True)
    year = grant_year(required=True)
    municipality_code = cbs_code(required=True)
    amount_cents = cents(minimum=1, required=True)
    issued_on = fields.Date(required=True)


class ReclaimReceivedPayload(Payload):
    grant_id = text(None, required=True)
    year = grant_year(required=True)
    municipality_code = cbs_code(required=True)
    amount_cents = cents(minimum=1, required=True)
    received_on = fields.Date(required=True)


class GrantTransferredPayload(Payload):
    """A municipality merged: its grant passes to the successor; history stays under both codes."""

    grant_id = text(None, required=True)
    year = grant_year(required=True)
    municipality_code = cbs_code(required=True, metadata={"description": "The successor."})
    from_municipality_code = cbs_code(required=True)
    effective_on = fields.Date(required=True)


CONTRACTS: tuple[EventContract, ...] = tuple(
    EventContract(_type, 1, GRANTS.name, _schema, _description)
    for _type, _schema, _description in (
        ("GrantFrameSet", GrantFrameSetPayload, "The yearly frame of the grant is set."),
        ("GrantFrameAmended", GrantFrameAmendedPayload, "The yearly frame is changed by an explicit amendment."),
        ("FrameAllocated", FrameAllocatedPayload, "A batch of awards is allocated from the year's frame."),
        ("GrantAwarded", GrantAwardedPayload, "A municipality is awarded its amount for the year."),
        ("AdvancePaid", AdvancePaidPayload, "BZK paid (part of) the advance, or after settlement what is still due."),
        ("GrantSettled", GrantSettledPayload, "BZK settled the grant (vaststelling), or corrected a settlement."),
        ("ReclaimIssued", ReclaimIssuedPayload, "BZK reclaims what was paid and not spent."),
        ("ReclaimReceived", ReclaimReceivedPayload, "The reclaimed amount was received."),
        ("GrantTransferred", GrantTransferredPayload, "A merged municipality's grant passed to its successor."),
    )
)
