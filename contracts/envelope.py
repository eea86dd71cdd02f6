"""The message envelope every topic carries, and its validation."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from contracts.canonical import compute_hash
from contracts.events.fields import WholeMatch, text
from contracts.identifiers import SHA256_HEX_PATTERN, UTC_TIMESTAMP_PATTERN
from contracts.registry import contract_for

SHA256_HEX = WholeMatch(SHA256_HEX_PATTERN, error="must be 64 lowercase hex digits")
UTC_TIMESTAMP = WholeMatch(
    UTC_TIMESTAMP_PATTERN,
    error="must be an ISO 8601 UTC timestamp like 2024-01-31T09:00:00.000000Z",
)


class EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    """One JSON object per Kafka message value."""

    event_id = fields.UUID(required=True, metadata={"description": "Unique id of the event."})
    event_type = fields.String(required=True, validate=validate.Length(min=1, max=100))
    schema_version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    stream_id = text(
        200, min_length=1, multi_line=False, required=True,
        metadata={"description": "The stream (aggregate) the event belongs to; the hash chain runs per stream."},
    )
    stream_position = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1),
        metadata={"description": "1 for a stream's first event, then +1 per event."},
    )
    occurred_at = fields.String(required=True, validate=UTC_TIMESTAMP)
    recorded_at = fields.String(required=True, validate=UTC_TIMESTAMP)
    producer = text(50, min_length=1, multi_line=False, required=True)
    payload = fields.Dict(required=True, keys=fields.String())
    prev_hash = fields.String(required=True, validate=SHA256_HEX)
    hash = fields.String(
        required=True, validate=SHA256_HEX,
        metadata={"description": "SHA-256 of the canonical JSON of the envelope without `hash`."},
    )


class ContractViolation(Exception):
    """A message that does not keep its contract; ``reason`` says which rule it breaks."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_ENVELOPE = EnvelopeSchema()


@cache
def _payload_schema(schema_class: type[Schema]) -> Schema:
    """One instance per payload schema: building a marshmallow schema per message is costly."""
    return schema_class()


def validate_envelope(envelope: Any) -> dict[str, Any]:
    """Checks the envelope, its payload against its event type's schema, and its own hash."""
    if not isinstance(envelope, dict):
        raise ContractViolation("envelope: not a JSON object")
    try:
        _ENVELOPE.load(envelope)
    except ValidationError as error:
        raise ContractViolation(f"envelope: {first_error(error.messages)}") from None
    try:
        contract = contract_for(envelope["event_type"], envelope["schema_version"])
    except KeyError:
        raise ContractViolation(
            f"event_type: unknown type {envelope['event_type']!r} v{envelope['schema_version']}"
        ) from None
    try:
        _payload_schema(contract.payload_schema).load(envelope["payload"])
    except ValidationError as error:
        raise ContractViolation(f"payload.{first_error(error.messages)}") from None
    if compute_hash(envelope) != envelope["hash"]:
        raise ContractViolation("hash: does not match the envelope's content")
    return envelope


def parse_message(value: bytes | None) -> dict[str, Any]:
    """Decodes and validates one Kafka message value."""
    if value is None:
        raise ContractViolation("value: empty message")
    try:
        decoded = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ContractViolation(f"value: not UTF-8 JSON ({error})") from None
    return validate_envelope(decoded)


def first_error(messages: Any) -> str:
    """The first of marshmallow's error messages, with its field's path: ``payload.amount_cents: ...``."""
    if isinstance(messages, dict):
        key, inner = next(iter(messages.items()))
        nested = first_error(inner)
        return f"{key}: {nested}" if not nested.startswith(":") else f"{key}{nested}"
    if isinstance(messages, list) and messages:
        return first_error(messages[0])
    return str(messages)
