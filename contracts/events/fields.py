"""Field types shared by the payload schemas: money, dates and identifiers."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate

from contracts.identifiers import (
    CBS_CODE_PATTERN,
    CBS_CODE_REASON,
    FIRST_YEAR,
    LAST_YEAR,
    ORG_ID_PATTERN,
    ORG_ID_REASON,
)
from contracts.values import MAX_CENTS

CBS_CODE = validate.Regexp(CBS_CODE_PATTERN, error=CBS_CODE_REASON)
ORG_ID = validate.Regexp(ORG_ID_PATTERN, error=ORG_ID_REASON)
YEARS = validate.Range(min=FIRST_YEAR, max=LAST_YEAR)


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
    return fields.Integer(strict=True, validate=YEARS, **kwargs)


def text(max_length: int = 500, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(max=max_length), **kwargs)


class Payload(Schema):
    """Base of every payload schema: unknown fields are ignored, so adding a field later is safe."""

    class Meta:
        unknown = EXCLUDE
