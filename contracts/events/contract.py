"""What one event contract says: its type and version, its topic, its payload schema.

Apart from the registry so that the payload modules (``grants``, ``bridge``, ``expenditures``) can
declare their contracts without importing the registry that collects them.
"""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import Schema


@dataclass(frozen=True)
class EventContract:
    event_type: str
    schema_version: int
    topic: str
    payload_schema: type[Schema]
    description: str
