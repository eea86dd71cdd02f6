"""Field types shared by the payload schemas: money, dates and identifiers."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate

from contracts.values import MAX_CENTS

CBS_CODE = validate.Regexp(r"^GM\d{4}$", error="must be a CBS municipality code: GM and 4 digits")
ORG_ID = validate.Regexp(
    r"^[A-Z]{2}-[A-Z0-9]{2,10}-[A-Za-z0-9._-]{1,60}$",
    error="must be an organisation identifier such as NL-KVK-12345678",
)


def _meta(kwargs: dict[str, Any], **defaults: Any) -> dict[str, Any]:
    return {**defaults, **kwargs.pop("metadata", {})}


def cents(*, minimum: int = 0, **kwargs: Any) -> fields.Integer:
    """Integer euro cents; floats and strings are refused, not rounded."""
    metadata = _meta(kwargs, description="Amount in integer euro cents.")
    return fields.Integer(
        strict=True, validate=validate.Range(min=minimum, max=MAX_CENTS), metadata=metadata, **kwargs
    )


def cbs_code(**kwargs: Any) -> fields.String:
    metadata = _meta(kwargs, example="GM0363")
    return fields.String(validate=CBS_CODE, metadata=metadata, **kwargs)


def org_id(**kwargs: Any) -> fields.String:
    metadata = _meta(kwargs, example="NL-KVK-41215098")
    return fields.String(validate=ORG_ID, metadata=metadata, **kwargs)


def grant_year(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=2019, max=2100), **kwargs)


def text(max_length: int = 500, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(max=max_length), **kwargs)


class Payload(Schema):
    """Base of every payload schema: unknown fields are ignored, so adding a field later is safe."""

    class Meta:
        unknown = EXCLUDE
