"""Events on ido.expenditures.v1: what municipalities spent the grant on."""

from __future__ import annotations

from marshmallow import fields, validate

from contracts.events.contract import EventContract
from contracts.events.fields import Payload, cbs_code, cents, grant_year, text
from contracts.topics import EXPENDITURES
from contracts.values import CATEGORIES, TEXT_LIMITS  # published here too: the services import them from this module


class CounterpartySchema(Payload):
    id = text(TEXT_LIMITS["counterparty.id"], min_length=1, required=True)
    name = text(TEXT_LIMITS["counterparty.name"], required=True)


class ExpenditureRecordedPayload(Payload):
    expenditure_id = fields.UUID(required=True)
    municipality_code = cbs_code(required=True)
    grant_year = grant_year(required=True)
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    amount_cents = cents(minimum=1, required=True)
    booked_on = fields.Date(required=True)
    counterparty = fields.Nested(CounterpartySchema, required=True)
    description = text(TEXT_LIMITS["description"], required=True)
    reference = text(TEXT_LIMITS["reference"], required=True)


class ExpenditureReversedPayload(Payload):
    expenditure_id = fields.UUID(required=True)
    municipality_code = cbs_code(required=True)
    grant_year = grant_year(required=True)
    reverses_event_id = fields.UUID(required=True)
    amount_cents = cents(minimum=1, required=True)
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    booked_on = fields.Date(required=True, metadata={"description": "The day the reversal is booked."})
    reason = text(required=True)


class YearClosedPayload(Payload):
    municipality_code = cbs_code(required=True)
    grant_year = grant_year(required=True)
    closed_on = fields.Date(required=True)
    closed_by = fields.String(required=True, validate=validate.OneOf(["ministry", "auditor"]))
    final_account = fields.Boolean(required=True)


class SisaLineDeclaredPayload(Payload):
    """A municipality's eindverantwoording of one SiSa line: the grant of ``grant_year`` in its accounts of
    ``accounts_year`` (issue 15). The account is due by 15 July of ``accounts_year`` + 1."""

    municipality_code = cbs_code(required=True)
    accounts_year = grant_year(required=True, metadata={"description": "The accounts year T of the SiSa annex."})
    grant_year = grant_year(required=True, metadata={"description": "The grant decision's year G (G <= T)."})
    final_account = fields.Boolean(required=True, metadata={"description": "Eindverantwoording Ja (true) / Nee."})
    declared_on = fields.Date(required=True)
    declared_by = fields.String(required=True, validate=validate.OneOf(["municipality", "ministry"]))
    reason = text(
        allow_none=True, load_default=None,
        metadata={"description": "Why the ministry recorded it on the municipality's behalf; null otherwise."},
    )


CONTRACTS: tuple[EventContract, ...] = tuple(
    EventContract(_type, 1, EXPENDITURES.name, _schema, _description)
    for _type, _schema, _description in (
        ("ExpenditureRecorded", ExpenditureRecordedPayload, "A municipality recorded one expenditure of the grant."),
        ("ExpenditureReversed", ExpenditureReversedPayload, "An expenditure was reversed; the reversal references it."),
        ("YearClosed", YearClosedPayload, "The grant year was closed for the municipality after its SiSa account."),
        ("SisaLineDeclared", SisaLineDeclaredPayload, "A municipality declared the eindverantwoording of a SiSa line."),
    )
)
