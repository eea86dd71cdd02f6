"""The fast message check gives parse_message's verdict, also on the messages where JSON Schema and
marshmallow part ways (1.0 as an integer, UTF-16 bytes, NaN)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts.canonical import GENESIS_HASH, canonical_json
from contracts.envelope import ContractViolation, parse_message
from contracts.message_check import MessageCheck
from services.common.domain.chained import build_envelope


def _recorded(**payload_changes: Any) -> dict[str, Any]:
    payload = {
        "expenditure_id": "0b6f3c7e-6a55-4d7e-9d0e-4b1c2a7e5f10",
        "municipality_code": "GM0363",
        "grant_year": 2024,
        "category": "promotion",
        "amount_cents": 1250,
        "booked_on": "2024-03-15",
        "counterparty": {"id": "KVK-12345678", "name": "Drukkerij"},
        "description": "Flyers",
        "reference": "INV-1",
        **payload_changes,
    }
    return build_envelope(
        event_id="5d1f0c4e-2b1a-4c3d-8e9f-0a1b2c3d4e5f",
        event_type="ExpenditureRecorded",
        schema_version=1,
        stream_id="expenditure-0b6f3c7e-6a55-4d7e-9d0e-4b1c2a7e5f10",
        stream_position=1,
        occurred_at="2024-03-15T10:00:00.000000Z",
        recorded_at="2024-03-15T10:00:00.000000Z",
        producer="ledger",
        payload=payload,
        prev_hash=GENESIS_HASH,
    )


def _verdict(check: Any, value: bytes) -> str:
    try:
        check(value)
    except ContractViolation as violation:
        return f"refused: {violation.reason}"
    return "accepted"


def _float_amount() -> bytes:
    # a hash made over the float, as a forger would: only the type is wrong
    envelope = _recorded()
    envelope["payload"]["amount_cents"] = 1250.0
    text = json.dumps({k: v for k, v in envelope.items() if k != "hash"}, sort_keys=True)
    from contracts.canonical import compute_hash

    envelope["hash"] = compute_hash(json.loads(text))
    return json.dumps(envelope).encode()


CASES = {
    "valid": lambda: canonical_json(_recorded()),
    "float amount with a matching hash": _float_amount,
    "exponent amount": lambda: canonical_json(_recorded()).replace(b'"amount_cents":1250', b'"amount_cents":1.25e3'),
    "NaN amount": lambda: canonical_json(_recorded()).replace(b'"amount_cents":1250', b'"amount_cents":NaN'),
    "UTF-16 bytes": lambda: canonical_json(_recorded()).decode().encode("utf-16"),
    "no such day": lambda: canonical_json(_recorded(booked_on="2024-02-30")),
    "boolean amount": lambda: canonical_json(_recorded(amount_cents=True)),
    "unknown payload field": lambda: canonical_json(_recorded(extra="kept out")),
    "content changed after hashing": lambda: canonical_json(_recorded()).replace(b"Flyers", b"Posters"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_fast_check_and_parse_message_agree(case: str) -> None:
    value = CASES[case]()
    expected = _verdict(parse_message, value)
    assert _verdict(MessageCheck().parse, value) == expected
    assert _verdict(MessageCheck(strict=True).parse, value) == expected
    if case in ("valid", "unknown payload field"):
        assert expected == "accepted"
    else:
        assert expected.startswith("refused"), case


def _with_event_type(event_type: str) -> bytes:
    envelope = _recorded()
    envelope["event_type"] = event_type
    return json.dumps(envelope).encode()


@pytest.mark.parametrize(
    "event_type",
    ["x" * 300, "../ExpenditureRecorded", "ExpenditureRecorded\x00", "seal-headers", "keyset", "a/b" * 100],
)
def test_an_event_type_never_names_a_file(event_type: str) -> None:
    """The attack (found by the differential property test): a message's ``event_type`` became part of a file
    name, so one 300 characters long raised OSError ("File name too long") inside the check instead of a
    refusal, a poison message for the projector's reading process. The check now knows its contracts from one
    listing of contracts/generated and looks the message's type up in it: every such message is refused with
    parse_message's own reason."""
    value = _with_event_type(event_type)
    expected = _verdict(parse_message, value)
    assert expected.startswith("refused"), expected
    assert _verdict(MessageCheck().parse, value) == expected


def test_unknown_event_types_are_not_remembered() -> None:
    """A forger's stream of made-up event types must not grow the check's memory: only known contracts are kept."""
    check = MessageCheck()
    for number in range(1_000):
        with pytest.raises(ContractViolation):
            check.parse(_with_event_type(f"Forged{number}"))
    assert check.parse(canonical_json(_recorded()))["event_type"] == "ExpenditureRecorded"
    assert len(check._validators) <= 1
