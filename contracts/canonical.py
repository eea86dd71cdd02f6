"""Canonical serialisation and the per-stream hash chain.

A consumer must be able to recompute an envelope's hash without our code, so the rule is plain:
SHA-256 (hex) over the UTF-8 JSON of the envelope without its ``hash`` field, keys sorted,
no insignificant white space, non-ASCII characters kept as they are.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first event of every stream."""

_JSON_LEAVES = frozenset({str, int, bool, type(None)})


def canonical_json(value: Any) -> bytes:
    # orjson writes the same bytes as the standard library's rule below for plain trees of dicts, lists,
    # strings, 64-bit integers, booleans and null (tests/contracts/test_canonical_encoder.py proves it on
    # every event type and on random values), at a tenth of the cost. Anything else (floats, NaN, larger
    # integers, subclasses, UUIDs, lone surrogates) takes the standard library's path, so its bytes or its
    # error stay exactly what they were: orjson would write NaN as null and a UUID as a string.
    if plain_json(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
    return canonical_json_reference(value)


def canonical_json_reference(value: Any) -> bytes:
    """The rule as first written, with the standard library: the measure of ``canonical_json``."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def plain_json(value: Any) -> bool:
    """Only dicts, lists, strings, integers, booleans and None (no float, no subclass): orjson's safe ground."""
    kind = type(value)
    if kind in _JSON_LEAVES:
        return True
    if kind is dict:
        for item in value.values():
            if not plain_json(item):
                return False
        return True
    if kind is list:
        for item in value:
            if not plain_json(item):
                return False
        return True
    return False


def compute_hash(envelope: dict[str, Any]) -> str:
    body = {key: value for key, value in envelope.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def compute_plain_hash(envelope: dict[str, Any]) -> str:
    """``compute_hash`` of an envelope already known to be ``plain_json`` (the fast message check tests it
    first): the same bytes, without walking the tree a second time."""
    body = {key: value for key, value in envelope.items() if key != "hash"}
    try:
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, a lone surrogate: the reference's bytes or error
        return hashlib.sha256(canonical_json_reference(body)).hexdigest()


def format_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a ``Z``: one spelling per instant, so hashes agree."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: time must be timezone-aware (UTC)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without timezone: {text!r}")
    return moment.astimezone(UTC)
