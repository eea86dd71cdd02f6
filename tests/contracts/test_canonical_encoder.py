"""The fast canonical encoder (orjson) writes the bytes and hashes of the rule as first written (the
standard library), on every event type and on random values; where it cannot, it takes the first rule's
path, errors included. The independent verifier (contracts/ido_verify.py) is the measure."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.canonical import GENESIS_HASH, canonical_json, compute_hash
from contracts.envelope import parse_message
from contracts.export import GENERATED_DIR
from contracts.ido_verify import canonical_json as reference_json
from contracts.ido_verify import envelope_hash as reference_hash
from contracts.message_check import MessageCheck
from contracts.registry import published_contracts

TEXT = st.text(st.characters(codec="utf-8"), max_size=30)  # every code point but lone surrogates
INTEGERS = st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from(
    [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63)]
)
LEAVES = st.none() | st.booleans() | INTEGERS | TEXT
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
ODD_VALUES = st.recursive(
    LEAVES | st.floats() | st.uuids() | st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2),
    lambda inner: st.lists(inner, max_size=3)
    | st.tuples(inner)
    | st.dictionaries(st.integers() | TEXT, inner, max_size=3),
    max_leaves=10,
)


def _outcome(encode: Any, value: Any) -> tuple[str, Any]:
    try:
        return "bytes", encode(value)
    except Exception as error:  # the same error class as the first rule, whatever it is
        return "error", type(error)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES)
def test_the_fast_encoder_writes_the_first_rules_bytes_for_json_values(value: Any) -> None:
    assert _outcome(canonical_json, value) == _outcome(reference_json, value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(ODD_VALUES)
def test_floats_nan_uuids_tuples_big_integers_surrogates_and_odd_keys_keep_the_first_rules_outcome(value: Any) -> None:
    assert _outcome(canonical_json, value) == _outcome(reference_json, value)


def test_the_cases_orjson_alone_would_get_wrong_take_the_first_rule() -> None:
    # orjson writes NaN as null, a UUID as a string and 1e16 as "1e16"; the first rule refuses the first
    # two and writes "1e+16"
    with pytest.raises(ValueError):
        canonical_json({"amount": math.nan})
    with pytest.raises(TypeError):
        canonical_json({"id": uuid.uuid4()})
    assert canonical_json({"a": 1e16, "b": 2**64}) == b'{"a":1e+16,"b":18446744073709551616}'


def _value_for(schema: dict[str, Any], draw: Any) -> Any:
    kinds = schema.get("type", "string")
    kind = kinds if isinstance(kinds, str) else draw(st.sampled_from(kinds))
    if kind == "integer":
        return draw(INTEGERS)
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "null":
        return None
    if kind == "object":
        return {name: _value_for(inner, draw) for name, inner in schema.get("properties", {}).items()} or draw(
            st.dictionaries(TEXT, LEAVES, max_size=3)
        )
    if kind == "array":
        return [_value_for(schema.get("items", {}), draw) for _ in range(draw(st.integers(0, 3)))]
    return draw(TEXT)


CONTRACTS = [(c.event_type, c.schema_version) for c in published_contracts()]  # not the toy contracts tests register


@pytest.mark.parametrize(("event_type", "schema_version"), CONTRACTS)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_event_types_envelope_has_the_first_rules_bytes_and_hash(
    event_type: str, schema_version: int, data: st.DataObject
) -> None:
    schema = json.loads((GENERATED_DIR / f"{event_type}.v{schema_version}.schema.json").read_text("utf-8"))
    payload_schema = schema["properties"]["payload"]
    payload = {name: _value_for(inner, data.draw) for name, inner in payload_schema["properties"].items()}
    envelope: dict[str, Any] = {
        "event_id": str(data.draw(st.uuids())),
        "event_type": event_type,
        "schema_version": schema_version,
        "stream_id": data.draw(TEXT),
        "stream_position": data.draw(st.integers(1, 2**40)),
        "occurred_at": "2024-03-15T10:00:00.000000Z",
        "recorded_at": "2024-03-15T10:00:00.123456Z",
        "producer": "ledger",
        "payload": payload,
        "prev_hash": GENESIS_HASH,
    }
    envelope["hash"] = compute_hash(envelope)
    assert envelope["hash"] == reference_hash(envelope)
    assert canonical_json(envelope) == reference_json(envelope)


def test_every_published_event_type_is_covered() -> None:
    generated = {path.name.split(".")[0] for path in GENERATED_DIR.glob("*.v*.schema.json")}
    assert generated and {name for name, _ in CONTRACTS} >= generated


@pytest.mark.parametrize(
    "extra",
    [2**64, 2**70, 1.5, 10**19, -(2**63) - 1],
    ids=["2^64", "2^70", "a float", "10^19", "below -2^63"],
)
def test_orjsons_reading_of_big_integers_and_floats_leaves_the_verdict_to_parse_message(extra: Any) -> None:
    # a forger hashes an unknown payload field the standard library keeps as a big integer; orjson alone
    # reads it as a float, which would change the hash and the verdict
    from tests.contracts.test_message_check import _recorded, _verdict

    envelope = _recorded()
    envelope["payload"]["unknown"] = extra
    envelope["hash"] = reference_hash(envelope)
    value = json.dumps(envelope).encode()
    assert _verdict(MessageCheck().parse, value) == _verdict(parse_message, value)
