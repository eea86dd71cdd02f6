"""Message values of the three kinds a reading process meets: passing the fast check, refused (a hash that no
longer matches), and passing only ``parse_message`` (an event id without dashes: marshmallow takes it, the
JSON Schema's format does not)."""

from __future__ import annotations

import json

from contracts.canonical import canonical_json, compute_hash
from tests.contracts.test_message_check import _recorded


def mixed_values(count: int) -> list[bytes]:
    good = canonical_json(_recorded())
    broken = good.replace(b"Flyers", b"Posters")  # its hash no longer matches
    undashed = _recorded()
    undashed["event_id"] = str(undashed["event_id"]).replace("-", "")
    undashed.pop("hash")
    undashed["hash"] = compute_hash(undashed)
    return [[good, broken, json.dumps(undashed).encode(), good][i % 4] for i in range(count)]
