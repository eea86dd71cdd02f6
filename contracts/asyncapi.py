"""One AsyncAPI 3 document describing the three topics and their messages."""

from __future__ import annotations

from typing import Any

from contracts.jsonschema import event_jsonschema
from contracts.provenance import SEAL_HEADERS_JSON_SCHEMA
from contracts.registry import published_contracts
from contracts.topics import PUBLISHED_TOPICS


def asyncapi_document() -> dict[str, Any]:
    contracts = published_contracts()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    headers = {"$ref": "#/components/schemas/SealHeaders"}
    for topic in PUBLISHED_TOPICS:
        channel_id = topic.name.replace(".", "_")
        channel_messages: dict[str, Any] = {}
        for contract in (c for c in contracts if c.topic == topic.name):
            message_id = f"{contract.event_type}_v{contract.schema_version}"
            schema = event_jsonschema(contract)
            schema.pop("$schema")
            messages[message_id] = {
                "name": contract.event_type,
                "title": schema["title"],
                "summary": contract.description,
                "contentType": "application/json",
                "headers": headers,
                "payload": {"schemaFormat": "application/schema+json;version=draft-2020-12", "schema": schema},
                "bindings": {"kafka": {"key": {"type": "string", "description": topic.key}}},
            }
            channel_messages[message_id] = {"$ref": f"#/components/messages/{message_id}"}
        channels[channel_id] = {
            "address": topic.name,
            "description": topic.description,
            "messages": channel_messages,
            "bindings": {
                "kafka": {
                    "topic": topic.name,
                    "partitions": topic.partitions,
                    "topicConfiguration": {"retention.ms": -1, "cleanup.policy": ["delete"]},
                }
            },
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "summary": f"The {topic.producer} service publishes every recorded event, in order per key.",
            "channel": {"$ref": f"#/channels/{channel_id}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "IDO grant ledger events",
            "version": "1.0.0",
            "description": (
                "Immutable events about the SPUK IDO grant, the bridging subsidy and municipal "
                "expenditures. Money is integer euro cents; times are UTC; each stream is hash-chained; "
                "every message is sealed by its topic's owning service (headers ido-seal, ido-seal-proof)."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {"SealHeaders": {k: v for k, v in SEAL_HEADERS_JSON_SCHEMA.items() if not k.startswith("$")}},
        },
    }
