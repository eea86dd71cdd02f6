"""Event contracts of the IDO grant ledger: topics, the envelope, payload schemas, hashing.

Usable on its own by a finance system: `parse_message(value)` validates a Kafka message value.
"""

from contracts.canonical import GENESIS_HASH, canonical_json, compute_hash, format_utc, parse_utc
from contracts.envelope import ContractViolation, EnvelopeSchema, parse_message, validate_envelope
from contracts.registry import EventContract, all_contracts, contract_for
from contracts.topics import ALL_TOPICS, BRIDGE, DEAD_LETTER, EXPENDITURES, GRANTS, PUBLISHED_TOPICS, TopicSpec

__all__ = [
    "ALL_TOPICS", "BRIDGE", "DEAD_LETTER", "EXPENDITURES", "GENESIS_HASH", "GRANTS", "PUBLISHED_TOPICS",
    "ContractViolation", "EnvelopeSchema", "EventContract", "TopicSpec", "all_contracts", "canonical_json",
    "compute_hash", "contract_for", "format_utc", "parse_message", "parse_utc", "validate_envelope",
]
