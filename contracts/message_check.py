"""A consumer's message check: the verdict of ``parse_message``, at a fraction of the cost.

``contracts.envelope.parse_message`` judges a message with marshmallow (about 130 µs a message).
This checks the same contract through its published JSON Schema (``contracts/generated``,
compiled once with jsonschema-rs, ~3 µs a message) and the same hash rule. A message the fast check
refuses is judged again by ``parse_message``, so a refusal and its reason are always
``parse_message``'s own. ``strict=True`` runs ``parse_message`` on every message.
Used by the live projector (``services/common/consumer.py``) and the audit replay, so both give
the same verdict on every message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

from contracts.canonical import compute_plain_hash, plain_json
from contracts.envelope import ContractViolation, parse_message
from contracts.export import GENERATED_DIR

Validator = Callable[[Any], bool]
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
"""A surrogate written as a JSON escape (canonical JSON writes other text as UTF-8): lone ones are refused."""


def plain_object(value: bytes) -> dict[str, Any] | None:
    """The JSON object ``value`` holds, as orjson reads it, when a JSON Schema can judge it as marshmallow
    would; else None (not JSON, not an object, a float anywhere, an escaped surrogate), for marshmallow."""
    try:
        found = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(found, dict) or not plain_json(found) or _ESCAPED_SURROGATE.search(value):
        return None  # the JSON Schemas' text pattern leaves lone surrogates to marshmallow (contracts/text.py)
    return found


_CONTRACT_FILE = re.compile(r"(?P<event_type>[A-Za-z][A-Za-z0-9]*)\.v(?P<schema_version>[1-9][0-9]*)\.schema\.json")


@cache
def contract_files() -> dict[tuple[str, int], Path]:
    """Every event contract's JSON Schema in contracts/generated, by event type and schema version: listed once.
    A message's ``event_type`` is looked up here and never becomes part of a file name (one 300 characters
    long made the check raise OSError instead of refusing the message: a poison message)."""
    found: dict[tuple[str, int], Path] = {}
    for path in GENERATED_DIR.iterdir():
        if (match := _CONTRACT_FILE.fullmatch(path.name)) is not None:
            found[(match["event_type"], int(match["schema_version"]))] = path
    return found


class MessageCheck:
    def __init__(self, *, strict: bool = False):
        self.strict = strict
        self._validators: dict[tuple[str, int], Validator] = {}
        """Compiled on first use, known contracts only: made-up event types are not remembered."""

    def _validator(self, event_type: Any, schema_version: Any) -> Validator | None:
        if not isinstance(event_type, str) or type(schema_version) is not int:
            return None
        key = (event_type, schema_version)
        found = self._validators.get(key)
        if found is None:
            path = contract_files().get(key)
            if path is None:
                return None  # parse_message gives the refusal and its reason
            # Formats checked (uuid, date: the day must exist), and a format it does not know refuses
            # to compile rather than pass everything: a looser check would accept what parse_message
            # refuses. Its regexes end at $ only at the end of the text, as ECMA-262's do.
            found = self._validators[key] = jsonschema_rs.validator_for(
                json.loads(path.read_text(encoding="utf-8")), validate_formats=True, ignore_unknown_formats=False
            ).is_valid
        return found

    def parse(self, value: bytes | None) -> dict[str, Any]:
        """The valid envelope of a message value; raises ``ContractViolation`` as the projector would."""
        return self.judge(value)[0]

    def judge(self, value: bytes | None) -> tuple[dict[str, Any], bool]:
        """``parse``'s envelope, and whether it is the value exactly as ``orjson.loads`` reads it (the fast
        check passed; else it is ``parse_message``'s). A checker in another process sends back only that
        flag, and its parent reads the value again (``services/common/check_process.py``)."""
        if self.strict or value is None:
            return parse_message(value), False
        # orjson reads UTF-8 only, as parse_message does (json.loads would also take UTF-16/32 bytes),
        # refuses NaN and keeps the last of duplicate keys, as json.loads does. It reads 1.0, 1e3 and an
        # integer beyond 64 bits as floats (the standard library keeps the big integer): a message with a
        # float is parse_message's. JSON Schema's "integer" takes 1.0, marshmallow's strict Integer does
        # not, and no contract has a float field.
        envelope = plain_object(value)
        if envelope is None:
            return parse_message(value), False
        validator = self._validator(envelope.get("event_type"), envelope.get("schema_version"))
        if validator is None or not validator(envelope):
            return parse_message(value), False  # the projector's verdict decides
        if compute_plain_hash(envelope) != envelope["hash"]:
            raise ContractViolation("hash: does not match the envelope's content")
        return envelope, True
