"""JSON Schema (2020-12) documents for each event type, derived from the marshmallow schemas."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema

from contracts.envelope import EnvelopeSchema
from contracts.registry import EventContract

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _converter() -> Any:
    # Nested schemas are inlined (no name resolver), so each document stands on its own.
    plugin = MarshmallowPlugin(schema_name_resolver=lambda _schema: None)  # type: ignore[arg-type,return-value]
    APISpec(title="contracts", version="1", openapi_version="3.1.0", plugins=[plugin])
    return plugin.converter


def schema_to_jsonschema(schema: type[Schema] | Schema) -> dict[str, Any]:
    instance = schema() if isinstance(schema, type) else schema
    document: dict[str, Any] = _converter().schema2jsonschema(instance)
    return document


def event_jsonschema(contract: EventContract) -> dict[str, Any]:
    envelope = schema_to_jsonschema(EnvelopeSchema)
    envelope["properties"]["event_type"] = {"const": contract.event_type}
    envelope["properties"]["schema_version"] = {"const": contract.schema_version}
    envelope["properties"]["payload"] = schema_to_jsonschema(contract.payload_schema)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:ido-ledger:contracts:{contract.event_type}:v{contract.schema_version}",
        "title": f"{contract.event_type} v{contract.schema_version}",
        "description": f"{contract.description} Topic {contract.topic}.",
        **envelope,
    }
