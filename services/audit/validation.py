"""The replay's message check: the same verdict as the live projector's, at a fraction of the cost.

The projector checks each message with ``contracts.envelope.parse_message`` (marshmallow, about
130 µs a message). The replay checks the same contract through its published JSON Schema
(``contracts/generated``, compiled once with fastjsonschema, a few µs) and the same hash rule.
A message the fast check refuses is judged again by ``parse_message``, so in that direction the
verdict is the projector's own. ``strict=True`` runs ``parse_message`` on every message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import fastjsonschema

from contracts.canonical import compute_hash
from contracts.envelope import ContractViolation, parse_message
from contracts.export import GENERATED_DIR

Validator = Callable[[Any], Any]


class MessageCheck:
    def __init__(self, *, strict: bool = False):
        self.strict = strict
        self._validators: dict[tuple[str, int], Validator | None] = {}

    def _validator(self, event_type: Any, schema_version: Any) -> Validator | None:
        if not isinstance(event_type, str) or type(schema_version) is not int:
            return None
        key = (event_type, schema_version)
        if key not in self._validators:
            path = GENERATED_DIR / f"{event_type}.v{schema_version}.schema.json"
            if path.parent != GENERATED_DIR or not path.is_file():
                self._validators[key] = None
            else:
                self._validators[key] = fastjsonschema.compile(
                    json.loads(path.read_text(encoding="utf-8")), use_default=False
                )
        return self._validators[key]

    def parse(self, value: bytes | None) -> dict[str, Any]:
        """The valid envelope of a message value; raises ``ContractViolation`` as the projector would."""
        if self.strict or value is None:
            return parse_message(value)
        try:
            envelope = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return parse_message(value)
        if not isinstance(envelope, dict):
            return parse_message(value)
        validator = self._validator(envelope.get("event_type"), envelope.get("schema_version"))
        if validator is None:
            return parse_message(value)
        try:
            validator(envelope)
        except fastjsonschema.JsonSchemaException:
            return parse_message(value)  # the projector's verdict decides
        if compute_hash(envelope) != envelope["hash"]:
            raise ContractViolation("hash: does not match the envelope's content")
        return envelope
