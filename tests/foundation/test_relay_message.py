"""The relay's fast message (services/common/relay_message.py) is exactly ``recorded_event`` and ``canonical_json``
of its envelope, on stored states of every event type and on the states the fast path must leave alone."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from eventsourcing.application import Application
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import all_contracts
from contracts.canonical import GENESIS_HASH, canonical_json
from contracts.export import GENERATED_DIR
from services.common.domain.chained import recorded_event
from services.common.relay_message import relay_message
from tests.contracts.test_canonical_encoder import _value_for

MAPPER = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
CONTRACTS = [  # the published ones (tests register toy contracts of their own, with no schema file)
    (c.event_type, c.schema_version)
    for c in all_contracts()
    if (GENERATED_DIR / f"{c.event_type}.v{c.schema_version}.schema.json").exists()
]
MOMENT = datetime(2024, 3, 15, 10, 0, 0, 123456, tzinfo=UTC)


def _stored(fields: dict[str, Any], event_type: str = "ExpenditureRecorded", position: int = 1) -> Any:
    """A stored event as the services' mapper writes it (the transcoder's JSON of the event's state)."""
    return SimpleNamespace(
        state=MAPPER.transcoder.encode(fields), topic=f"ido:{event_type}", originator_version=position
    )


def _fields(payload: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "timestamp": MOMENT,
        "originator_topic": "ido:Expenditure",
        "event_id": str(uuid.uuid4()),
        "stream_id": "expenditure-1",
        "partition_key": "GM0363",
        "producer": "ledger",
        "occurred_at": "2024-03-15T10:00:00.000000Z",
        "prev_hash": GENESIS_HASH,
        "hash": "ab" * 32,
        **payload,
        "record_mac": "cd" * 32,
        **overrides,
    }


def _slow(stored: Any) -> tuple[Any, ...]:
    key, envelope, mac = recorded_event(MAPPER, stored)
    return key, envelope, mac, canonical_json(envelope)


def _fast(stored: Any) -> tuple[Any, ...]:
    return relay_message(MAPPER, stored)


def _outcome(make: Any, stored: Any) -> tuple[str, Any]:
    try:
        return "message", make(stored)
    except Exception as error:  # the same error class as the slow path, whatever it is
        return "error", type(error)


@pytest.mark.parametrize(("event_type", "schema_version"), CONTRACTS)
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_event_types_message_is_the_recorded_envelopes(
    event_type: str, schema_version: int, data: st.DataObject
) -> None:
    schema = json.loads((GENERATED_DIR / f"{event_type}.v{schema_version}.schema.json").read_text("utf-8"))
    payload_schema = schema["properties"]["payload"]
    payload = {name: _value_for(inner, data.draw) for name, inner in payload_schema["properties"].items()}
    extra = {"class_version": schema_version} if schema_version > 1 else {}
    stored = _stored(_fields(payload, **extra), event_type, data.draw(st.integers(1, 2**40)))
    assert _outcome(_fast, stored) == _outcome(_slow, stored)


@pytest.mark.parametrize(
    "fields",
    [
        _fields({"amount_cents": 2**70}),  # orjson alone would read a float
        _fields({"amount_cents": -(2**63) - 1}),
        _fields({"amount_cents": 12.5}),
        _fields({"nested": [{"deep": [1.0]}]}),
        _fields({"id": uuid.uuid4()}),  # a second typed value
        _fields({"amount": Decimal("1.10")}),
        _fields({"text": 'a "_type_" inside a string, and é'}),
        _fields({}, timestamp=datetime(2024, 3, 15, 10, 0, 0, tzinfo=UTC)),  # no microseconds in its ISO text
        _fields({}, timestamp=datetime(2024, 3, 15, 10, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))),
        _fields({}, timestamp=datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC)),  # strftime spells such a year apart
        _fields({}, class_version=3),
    ],
    ids=["2^70", "below -2^63", "a float", "a nested float", "a UUID", "a Decimal", "a quoted marker",
         "whole seconds", "not UTC", "year 999", "class_version"],
)
def test_what_the_fast_path_must_not_decide_gets_the_slow_paths_answer(fields: dict[str, Any]) -> None:
    stored = _stored(fields)
    assert _outcome(_fast, stored) == _outcome(_slow, stored)


def test_a_broken_state_fails_as_the_slow_path_does() -> None:
    broken = SimpleNamespace(state=b'{"timestamp":{"_type_":"datetime_iso","_data_":"not a time"}}',
                             topic="ido:ExpenditureRecorded", originator_version=1)
    assert _outcome(_fast, broken) == _outcome(_slow, broken)
    assert _outcome(_fast, broken)[0] == "error"
