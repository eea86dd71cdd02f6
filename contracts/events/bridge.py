"""Events on ido.bridge.v1: the one-off bridging subsidy (overbruggingsregeling) paid by the KB to libraries.

Two kinds of stream: ``bridge-frame`` (key ``bridge-frame``) carries the frame, its amendments and
every change of the committed total; ``library-<id>`` (key: the library's organisation id) carries a
library's register entry, its grant, payments, final account and reclaim.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from contracts.events.contract import EventContract
from contracts.events.fields import Payload, WholeMatch, cbs_code, cents, org_id, text
from contracts.topics import BRIDGE

RATE = WholeMatch(
    r"^[0-9]{1,6}(\.[0-9]{1,6})?$",
    error="must be a decimal number of cents such as 15 or 15.5 (at most 6 decimals)",
)


def rate(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=RATE,
        metadata={
            "description": "Euro cents per inhabitant, as an exact decimal string (never a float).",
            "example": "15",
        },
        **kwargs,
    )


class ServiceAreaEntry(Payload):
    municipality_code = cbs_code(required=True)
    inhabitants = fields.Integer(strict=True, required=True, validate=validate.Range(min=0, max=10**8))


class BridgeFrameSetPayload(Payload):
    frame_cents = cents(minimum=1, required=True)
    rate_cents_per_inhabitant = rate(required=True)
    account_period_start = fields.Date(required=True, metadata={"description": "First day the final account covers."})
    spending_deadline = fields.Date(required=True, metadata={"description": "Last day of the account period."})
    account_deadline = fields.Date(required=True, metadata={"description": "Accounts submitted after it are late."})


class BridgeFrameAmendedPayload(BridgeFrameSetPayload):
    previous_frame_cents = cents(minimum=1, required=True)
    previous_spending_deadline = fields.Date(required=True)
    previous_account_deadline = fields.Date(required=True)
    reason = text(required=True)


class BridgeCommitmentChangedPayload(Payload):
    committed_cents = cents(required=True, metadata={"description": "Sum of all libraries' grants after the change."})
    previous_committed_cents = cents(required=True)
    frame_cents = cents(minimum=1, required=True)
    batch_id = text(
        None, required=True, allow_none=True,
        metadata={"description": "The grant computation; null for a single grant."},
    )
    single_grant_library_id = org_id(
        required=True,
        allow_none=True,
        metadata={"description": "The library of a single entered or corrected grant; null for a batch."},
    )


class LibraryRegisteredPayload(Payload):
    library_id = org_id(required=True)
    name = text(200, required=True)
    service_area = fields.List(fields.Nested(ServiceAreaEntry), required=True)


class LibraryServiceAreaChangedPayload(Payload):
    library_id = org_id(required=True)
    service_area = fields.List(fields.Nested(ServiceAreaEntry), required=True)
    reason = text(required=True)


class BridgeGrantSetPayload(Payload):
    library_id = org_id(required=True)
    amount_cents = cents(required=True)
    inhabitants = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))
    basis = fields.String(required=True, validate=validate.OneOf(["computed", "entered", "corrected"]))
    batch_id = text(None, required=True, allow_none=True)
    rate_cents_per_inhabitant = rate(required=True, allow_none=True)
    corrects_event_id = fields.UUID(
        required=True, allow_none=True, metadata={"description": "The grant event this one replaces; null if none."}
    )
    reason = text(allow_none=True, load_default=None)


class BridgePaymentMadePayload(Payload):
    library_id = org_id(required=True)
    amount_cents = cents(minimum=1, required=True)
    paid_on = fields.Date(required=True)
    payment_batch_id = text(None, required=True, allow_none=True)


class BridgeAccountSubmittedPayload(Payload):
    library_id = org_id(required=True)
    grant_cents = cents(required=True)
    paid_cents = cents(required=True)
    spent_cents = cents(required=True, metadata={"description": "Spent by the spending deadline, as accounted."})
    unspent_cents = cents(required=True, metadata={"description": "Paid and not spent: reclaimed."})
    period_start = fields.Date(required=True)
    period_end = fields.Date(required=True)
    submitted_on = fields.Date(required=True)
    account_deadline = fields.Date(required=True)
    late = fields.Boolean(required=True, metadata={"description": "Submitted after the account deadline."})


class BridgeReclaimIssuedPayload(Payload):
    library_id = org_id(required=True)
    amount_cents = cents(minimum=1, required=True)
    issued_on = fields.Date(required=True)
    account_event_id = fields.UUID(required=True)


CONTRACTS: tuple[EventContract, ...] = tuple(
    EventContract(_type, 1, BRIDGE.name, _schema, _description)
    for _type, _schema, _description in (
        ("BridgeFrameSet", BridgeFrameSetPayload, "The bridging frame, rate and deadlines are set."),
        ("BridgeFrameAmended", BridgeFrameAmendedPayload, "The frame, rate or deadlines are changed by an amendment."),
        (
            "BridgeCommitmentChanged", BridgeCommitmentChangedPayload,
            "The total of granted amounts changed (a computation batch or a single grant); never above the frame.",
        ),
        ("LibraryRegistered", LibraryRegisteredPayload, "A library organisation and its service area are registered."),
        ("LibraryServiceAreaChanged", LibraryServiceAreaChangedPayload, "A library's service area changed."),
        ("BridgeGrantSet", BridgeGrantSetPayload, "A library's bridging grant is computed, entered or corrected."),
        ("BridgePaymentMade", BridgePaymentMadePayload, "The KB paid (part of) a library's bridging grant."),
        ("BridgeAccountSubmitted", BridgeAccountSubmittedPayload, "A library submitted its final account."),
        ("BridgeReclaimIssued", BridgeReclaimIssuedPayload, "The unspent part is reclaimed from the library."),
    )
)
