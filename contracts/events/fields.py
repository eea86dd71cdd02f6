"""Field types shared by the payload schemas and the request schemas: money, dates, identifiers, text."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from contracts.identifiers import (
    CBS_CODE_PATTERN,
    CBS_CODE_REASON,
    FIRST_YEAR,
    LAST_YEAR,
    ORG_ID_PATTERN,
    ORG_ID_REASON,
)
from contracts.text import MULTI_LINE_TEXT_PATTERN, SINGLE_LINE_TEXT_PATTERN, text_problem
from contracts.values import MAX_CENTS


class WholeMatch(validate.Regexp):
    """``validate.Regexp`` matched whole: marshmallow's own uses ``re.match``, whose ``$`` also matches
    before a trailing newline. The only pattern validator of the code base (a test checks it)."""

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class PlainText(validate.Validator):
    """The text rule of ``contracts/text.py``: single-line, or multi-line (TAB, LF, CR allowed)."""

    def __init__(self, *, multi_line: bool):
        self.multi_line = multi_line

    def __call__(self, value: str) -> str:
        problem = text_problem(value, multi_line=self.multi_line)
        if problem is not None:
            raise ValidationError(problem)
        return value


CBS_CODE = WholeMatch(CBS_CODE_PATTERN, error=CBS_CODE_REASON)
ORG_ID = WholeMatch(ORG_ID_PATTERN, error=ORG_ID_REASON)
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


class AsciiInteger(fields.Integer):
    """A whole number from a query string: ASCII digits only. marshmallow's reads text with ``int``,
    which takes other scripts' digits, spaces and a trailing newline (``"2024\\n"`` -> 2024)."""

    def _validated(self, value: Any) -> Any:
        if isinstance(value, str) and not _ASCII_DIGITS.fullmatch(value):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


_ASCII_DIGITS = re.compile(r"[0-9]{1,18}")


def grant_year(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=YEARS, **kwargs)


def text(
    max_length: int | None = 500, *, min_length: int | None = None, multi_line: bool = True, **kwargs: Any
) -> fields.String:
    """Text under the one text rule and a length cap. Payloads take the multi-line rule in every text
    field (events published before the rule with a TAB or LF stay valid); requests say which they take.
    The JSON Schema publishes the rule as a ``pattern``."""
    pattern = MULTI_LINE_TEXT_PATTERN if multi_line else SINGLE_LINE_TEXT_PATTERN
    metadata = _meta(kwargs, pattern=pattern)
    return fields.String(
        validate=[validate.Length(min=min_length, max=max_length), PlainText(multi_line=multi_line)],
        metadata=metadata, **kwargs,
    )


def line(max_length: int, *, min_length: int | None = 1, **kwargs: Any) -> fields.String:
    """Single-line text (a name, a reference, an id written by people): see ``contracts/text.py``."""
    return text(max_length, min_length=min_length, multi_line=False, **kwargs)


def prose(max_length: int = 500, *, min_length: int | None = 1, **kwargs: Any) -> fields.String:
    """Multi-line text (a reason, a description): TAB, LF and CR allowed, no other control character."""
    return text(max_length, min_length=min_length, multi_line=True, **kwargs)


class Payload(Schema):
    """Base of every payload schema: unknown fields are ignored, so adding a field later is safe."""

    class Meta:
        unknown = EXCLUDE
