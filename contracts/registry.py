"""Which event types exist, on which topic, with which payload schema and version."""

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


_CONTRACTS: dict[tuple[str, int], EventContract] = {}


def register(contract: EventContract) -> EventContract:
    key = (contract.event_type, contract.schema_version)
    if key in _CONTRACTS and _CONTRACTS[key] != contract:
        raise ValueError(f"event type {contract.event_type} v{contract.schema_version} registered twice")
    _CONTRACTS[key] = contract
    return contract


def contract_for(event_type: str, schema_version: int) -> EventContract:
    _load_all()
    return _CONTRACTS[(event_type, schema_version)]


def all_contracts() -> list[EventContract]:
    _load_all()
    return sorted(_CONTRACTS.values(), key=lambda c: (c.topic, c.event_type, c.schema_version))


def _load_all() -> None:
    # Importing the modules registers their contracts; done lazily to keep imports acyclic.
    from contracts.events import bridge, expenditures, grants  # noqa: F401


def published_contracts() -> list[EventContract]:
    """The contracts of our own topics (tests may register others for their own topics)."""
    from contracts.topics import PUBLISHED_TOPICS

    names = {topic.name for topic in PUBLISHED_TOPICS}
    return [c for c in all_contracts() if c.topic in names]
