"""The fast message check never accepts what ``parse_message`` refuses, on every published event type.

The fast check (``contracts/message_check.py``) runs the published JSON Schema through a compiled validator
and falls back to ``parse_message`` (marshmallow) for what that validator refuses. So the one way it could
go wrong is a validator that is looser than marshmallow somewhere: a format it does not check, a regex that
reads ``$`` or a digit differently, an integer that is a float. A forger's envelope carries a hash made over
whatever they wrote, so the hash alone does not stop it. Each example here is an envelope that its schema
accepts, then (in most examples) one field replaced by a hostile value and the hash made again; both checks
must give the same verdict, word for word.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.canonical import compute_hash
from contracts.envelope import parse_message
from contracts.export import GENERATED_DIR
from contracts.message_check import MessageCheck
from contracts.registry import published_contracts
from contracts.text import MULTI_LINE_TEXT_PATTERN, SINGLE_LINE_TEXT_PATTERN
from tests.contracts.test_message_check import _verdict

CONTRACTS = [(c.event_type, c.schema_version) for c in published_contracts()]
_TEXT_PATTERNS = {MULTI_LINE_TEXT_PATTERN, SINGLE_LINE_TEXT_PATTERN}
_PLAIN_TEXT = st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"])

HOSTILE = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            False,
            0,
            -1,
            1.0,
            1.5,
            2**63,
            2**64,
            -(2**63) - 1,
            10**13,
            "",
            " ",
            "1",
            "2024-02-30",
            "2023-02-29",
            "2024-2-01",
            "2024-01-01\n",
            "2024-01-01T00:00:00Z",
            "２０２４-01-01",
            "5d1f0c4e2b1a4c3d8e9f0a1b2c3d4e5f",
            "5D1F0C4E-2B1A-4C3D-8E9F-0A1B2C3D4E5F",
            "{5d1f0c4e-2b1a-4c3d-8e9f-0a1b2c3d4e5f}",
            "urn:uuid:5d1f0c4e-2b1a-4c3d-8e9f-0a1b2c3d4e5f",
            "GM0363\n",
            " GM0363",
            "GM٠٣٦٣",
            "gm0363",
            "a\x00b",
            "a\x85b",
            "a\tb",
            "a\nb",
            "a\u2028b",
            "x" * 501,
            "2024-03-15T10:00:00.000000Z\n",
            "2024-03-15T10:00:00Z",
            "0" * 63,
            "A" * 64,
            [],
            {},
            [1],
            {"a": 1},
        ]
    ),
    st.integers(),
    st.text(st.characters(codec="utf-8"), max_size=8),
)


def _valid(schema: dict[str, Any], draw: Any) -> Any:
    """A value the schema accepts."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return draw(st.sampled_from(schema["enum"]))
    kinds = schema.get("type", "string")
    kind = kinds if isinstance(kinds, str) else draw(st.sampled_from(kinds))
    if kind == "null":
        return None
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "integer":
        return draw(st.integers(schema.get("minimum", -(2**40)), schema.get("maximum", 2**40)))
    if kind == "object":
        return {name: _valid(inner, draw) for name, inner in schema.get("properties", {}).items()}
    if kind == "array":
        least = schema.get("minItems", 0)
        return [_valid(schema.get("items", {}), draw) for _ in range(draw(st.integers(least, least + 2)))]
    low, high = schema.get("minLength", 0), schema.get("maxLength", 10**6)
    if schema.get("format") == "uuid":
        return str(draw(st.uuids()))
    if schema.get("format") == "date":
        return draw(st.dates(date(2019, 1, 1), date(2100, 12, 31))).isoformat()
    pattern = schema.get("pattern")
    if pattern is None or pattern in _TEXT_PATTERNS:
        return draw(st.text(_PLAIN_TEXT, min_size=low, max_size=min(high, low + 20)))
    return draw(st.from_regex(pattern, fullmatch=True).filter(lambda text: low <= len(text) <= high))


def _near(value: Any, draw: Any) -> Any:
    """A value one small step from a valid one: where a loose validator and marshmallow part ways."""
    if isinstance(value, bool) or value is None:
        return draw(st.sampled_from([0, 1, "true", None if value is not None else False]))
    if isinstance(value, int):
        return draw(st.sampled_from([value - 1, value + 1, float(value), str(value), -value, value * 10**12]))
    if isinstance(value, str):
        edits = [
            value + "\n",
            " " + value,
            value.upper(),
            value.replace("-", ""),
            value.replace("-", "/"),
            value[:-1],
            value + value[-1:],
            value.replace("0", "٠"),
            value.replace("1", "１"),
            value[:8] + "-31" if len(value) == 10 else value + "\x00",
            value.replace("2", "\x85"),
            "{" + value + "}",
            value[:-2] + "30" if len(value) == 10 else value + "\t",
        ]
        return draw(st.sampled_from(edits))
    return draw(HOSTILE)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*path, index))
    return found


@pytest.mark.parametrize(("event_type", "schema_version"), CONTRACTS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_the_fast_check_agrees_with_parse_message_on_forged_envelopes(
    event_type: str, schema_version: int, data: st.DataObject
) -> None:
    schema = json.loads((GENERATED_DIR / f"{event_type}.v{schema_version}.schema.json").read_text("utf-8"))
    envelope = {name: _valid(inner, data.draw) for name, inner in schema["properties"].items() if name != "hash"}
    attack = data.draw(st.sampled_from(["none", "near", "near", "replace", "remove", "add"]))
    if attack != "none":
        path = data.draw(st.sampled_from(_paths(envelope)))
        *parents, last = path
        holder: Any = envelope
        for step in parents:
            holder = holder[step]
        if attack == "near":
            holder[last] = _near(holder[last], data.draw)
        elif attack == "replace":
            holder[last] = data.draw(HOSTILE)
        elif attack == "remove":
            del holder[last]
        elif isinstance(holder, dict):
            holder[f"{last}_extra"] = data.draw(HOSTILE)
    envelope["hash"] = compute_hash(envelope)  # the forger's own hash of what they wrote
    value = json.dumps(envelope).encode()

    expected = _verdict(parse_message, value)
    assert _verdict(MessageCheck().parse, value) == expected
    if attack == "none":
        assert expected == "accepted", "the generator must make envelopes the contract accepts"


def test_every_published_contract_is_tried() -> None:
    generated = {path.name.split(".")[0] for path in GENERATED_DIR.glob("*.v*.schema.json")}
    assert generated and {name for name, _ in CONTRACTS} >= generated
