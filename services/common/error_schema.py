"""The body of every 4xx/5xx answer, for the OpenAPI documents (``http.error_response`` writes it)."""

from __future__ import annotations

from marshmallow import Schema, fields


class ServiceErrorSchema(Schema):
    """The body of every 4xx/5xx answer, as `error_response` writes it; for the OpenAPI documents."""

    code = fields.Integer(metadata={"description": "The HTTP status."})
    status = fields.String(metadata={"example": "rule_broken"})
    message = fields.String(metadata={"description": "The rule or problem, in words."})
    errors = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()), metadata={"description": "Field -> reasons."}
    )
