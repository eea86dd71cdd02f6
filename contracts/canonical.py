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

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first event of every stream."""


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def compute_hash(envelope: dict[str, Any]) -> str:
    body = {key: value for key, value in envelope.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


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
