"""Request and response schemas of the bridge API (the OpenAPI document is generated from them).

Request schemas refuse unknown fields, floats for cents and malformed codes, each with the field's
name and the reason (422).
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from contracts.events.bridge import rate
from contracts.events.fields import MAX_CENTS, cbs_code, cents, line, org_id, prose
from services.bridge.application.app import (
    DEFAULT_ACCOUNT_DEADLINE,
    DEFAULT_ACCOUNT_PERIOD_START,
    DEFAULT_SPENDING_DEADLINE,
)
from services.bridge.domain.frame import DEFAULT_FRAME_CENTS
from services.bridge.domain.rounding import DEFAULT_RATE
from services.common.http import ServiceErrorSchema


class ServiceAreaEntrySchema(Schema):
    municipality_code = cbs_code(required=True)
    inhabitants = fields.Integer(strict=True, required=True, validate=validate.Range(min=0, max=10**8))


# -- requests -------------------------------------------------------------------------------------


class FrameSetSchema(Schema):
    frame_cents = cents(minimum=1, load_default=DEFAULT_FRAME_CENTS, metadata={"example": DEFAULT_FRAME_CENTS})
    rate_cents_per_inhabitant = rate(load_default=DEFAULT_RATE)
    account_period_start = fields.Date(load_default=DEFAULT_ACCOUNT_PERIOD_START)
    spending_deadline = fields.Date(load_default=DEFAULT_SPENDING_DEADLINE)
    account_deadline = fields.Date(load_default=DEFAULT_ACCOUNT_DEADLINE)


class FrameAmendSchema(Schema):
    frame_cents = cents(minimum=1)
    rate_cents_per_inhabitant = rate()
    account_period_start = fields.Date()
    spending_deadline = fields.Date()
    account_deadline = fields.Date()
    reason = prose(500, required=True)


class LibraryRegisterSchema(Schema):
    library_id = org_id(required=True)
    name = line(200, required=True)
    service_area = fields.List(
        fields.Nested(ServiceAreaEntrySchema), required=True, validate=validate.Length(min=1, max=500)
    )


class ServiceAreaChangeSchema(Schema):
    service_area = fields.List(
        fields.Nested(ServiceAreaEntrySchema), required=True, validate=validate.Length(min=1, max=500)
    )
    reason = prose(500, required=True)


class GrantSetSchema(Schema):
    amount_cents = cents(required=True)
    reason = prose(500, required=True)
    corrects_event_id = fields.UUID(
        load_default=None,
        allow_none=True,
        metadata={"description": "Required to correct: the event id of the library's current grant."},
    )


class PaymentSchema(Schema):
    amount_cents = cents(minimum=1, required=True)
    paid_on = fields.Date(required=True)


class PaymentLineSchema(Schema):
    library_id = org_id(required=True)
    amount_cents = cents(minimum=1, required=True)


class PaymentBatchSchema(Schema):
    paid_on = fields.Date(required=True)
    payments = fields.List(
        fields.Nested(PaymentLineSchema),
        load_default=None,
        validate=validate.Length(min=1, max=1000),
        metadata={"description": "Omit to pay every library its outstanding grant."},
    )


class AccountSchema(Schema):
    spent_cents = cents(required=True, metadata={"description": (
        "Spent by the spending deadline, as the library reports it (its own money too). May be above what was "
        "paid: the account then settles at what was paid, reclaims nothing and pays nothing more."
    )})
    submitted_on = fields.Date(required=True)


class LibrariesQuerySchema(Schema):
    municipality = cbs_code(metadata={"description": "Only libraries serving this municipality."})
    late = fields.Boolean(metadata={"description": "Only libraries whose account is late (true) or on time (false)."})


# -- responses ------------------------------------------------------------------------------------


class FrameSchema(Schema):
    frame_cents = fields.Integer()
    rate_cents_per_inhabitant = fields.String()
    account_period_start = fields.Date()
    spending_deadline = fields.Date()
    account_deadline = fields.Date()
    committed_cents = fields.Integer(metadata={"description": "Sum of all grants."})
    uncommitted_cents = fields.Integer()
    version = fields.Integer()


class OverviewSchema(FrameSchema):
    libraries = fields.Integer()
    inhabitants = fields.Integer()
    paid_cents = fields.Integer()
    spent_cents = fields.Integer()
    reclaimed_cents = fields.Integer()
    accounts_submitted = fields.Integer()
    accounts_late = fields.Integer()


class GrantSchema(Schema):
    amount_cents = fields.Integer()
    event_id = fields.String(metadata={"description": "Reference this id to correct the grant."})
    basis = fields.String()


class PaymentOutSchema(Schema):
    event_id = fields.String()
    amount_cents = fields.Integer()
    paid_on = fields.Date()


class AccountOutSchema(Schema):
    event_id = fields.String()
    spent_cents = fields.Integer()
    unspent_cents = fields.Integer()
    period_start = fields.Date()
    period_end = fields.Date()
    submitted_on = fields.Date()
    account_deadline = fields.Date()
    late = fields.Boolean()


class ReclaimOutSchema(Schema):
    event_id = fields.String()
    amount_cents = fields.Integer()
    issued_on = fields.Date()


class LibrarySchema(Schema):
    library_id = fields.String()
    name = fields.String()
    service_area = fields.List(fields.Nested(ServiceAreaEntrySchema))
    inhabitants = fields.Integer()
    grant = fields.Nested(GrantSchema, allow_none=True)
    paid_cents = fields.Integer()
    outstanding_cents = fields.Integer()
    payments = fields.List(fields.Nested(PaymentOutSchema))
    account = fields.Nested(AccountOutSchema, allow_none=True)
    reclaim = fields.Nested(ReclaimOutSchema, allow_none=True)
    version = fields.Integer()


class ComputedGrantSchema(Schema):
    library_id = fields.String()
    inhabitants = fields.Integer()
    amount_cents = fields.Integer()
    event_id = fields.String()


class GrantBatchSchema(Schema):
    batch_id = fields.String()
    rate_cents_per_inhabitant = fields.String()
    inhabitants = fields.Integer()
    total_cents = fields.Integer()
    frame_cents = fields.Integer()
    grants = fields.List(fields.Nested(ComputedGrantSchema))


class PaymentBatchResultSchema(Schema):
    payment_batch_id = fields.String()
    paid_on = fields.Date()
    total_cents = fields.Integer(validate=validate.Range(max=MAX_CENTS))
    payments = fields.List(fields.Nested(PaymentLineSchema))


class EventSchema(Schema):
    """An integration envelope as published on ido.bridge.v1."""

    event_id = fields.String()
    event_type = fields.String()
    schema_version = fields.Integer()
    stream_id = fields.String()
    stream_position = fields.Integer()
    occurred_at = fields.String()
    recorded_at = fields.String()
    producer = fields.String()
    payload = fields.Dict(keys=fields.String())
    prev_hash = fields.String()
    hash = fields.String()


BridgeErrorSchema = ServiceErrorSchema  # one error body for every service, defined where it is written

