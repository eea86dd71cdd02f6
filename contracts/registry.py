"""Which event types exist, on which topic, with which payload schema and version.

The payload modules declare their contracts (``CONTRACTS``); this module collects them. Imports go
one way only, registry -> events (issue 14; `lint-imports` checks it).
"""

from __future__ import annotations

from contracts.events import bridge, expenditures, grants
from contracts.events.contract import EventContract
from contracts.topics import PUBLISHED_TOPICS

__all__ = ["EventContract", "all_contracts", "contract_for", "published_contracts", "register"]

_CONTRACTS: dict[tuple[str, int], EventContract] = {}


def register(contract: EventContract) -> EventContract:
    """Adds a contract; tests register their own for their own topics."""
    key = (contract.event_type, contract.schema_version)
    if key in _CONTRACTS and _CONTRACTS[key] != contract:
        raise ValueError(f"event type {contract.event_type} v{contract.schema_version} registered twice")
    _CONTRACTS[key] = contract
    return contract


for _module in (bridge, expenditures, grants):
    for _contract in _module.CONTRACTS:
        register(_contract)


def contract_for(event_type: str, schema_version: int) -> EventContract:
    return _CONTRACTS[(event_type, schema_version)]


def all_contracts() -> list[EventContract]:
    return sorted(_CONTRACTS.values(), key=lambda c: (c.topic, c.event_type, c.schema_version))


def published_contracts() -> list[EventContract]:
    """The contracts of our own topics (tests may register others for their own topics)."""
    names = {topic.name for topic in PUBLISHED_TOPICS}
    return [c for c in all_contracts() if c.topic in names]
