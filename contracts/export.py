"""Writes the generated contract documents: one JSON Schema per event type and the AsyncAPI file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts.asyncapi import asyncapi_document
from contracts.jsonschema import event_jsonschema
from contracts.provenance import KEYSET_JSON_SCHEMA, SEAL_HEADERS_JSON_SCHEMA
from contracts.registry import published_contracts

GENERATED_DIR = Path(__file__).parent / "generated"
RELEASED_DIR = Path(__file__).parent / "released"


def render(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generated_documents() -> dict[str, str]:
    """File name -> content, for everything under contracts/generated/."""
    documents = {
        f"{c.event_type}.v{c.schema_version}.schema.json": render(event_jsonschema(c)) for c in published_contracts()
    }
    documents["asyncapi.json"] = render(asyncapi_document())
    documents.update({name: render(schema) for name, schema in PROVENANCE_SCHEMAS.items()})
    return documents


PROVENANCE_SCHEMAS = {"keyset.schema.json": KEYSET_JSON_SCHEMA, "seal-headers.schema.json": SEAL_HEADERS_JSON_SCHEMA}
"""Not event schemas: described in docs/audit.md#provenance, never copied to contracts/released."""


def export(directory: Path = GENERATED_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in generated_documents().items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def release(directory: Path = RELEASED_DIR) -> list[Path]:
    """Keeps a copy of every event schema as released; existing releases are never overwritten."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in generated_documents().items():
        path = directory / name
        if name.endswith(".schema.json") and name not in PROVENANCE_SCHEMAS and not path.exists():
            path.write_text(content, encoding="utf-8")
            written.append(path)
    return written
