"""The contracts finance systems rely on: generated documents current, released schemas kept."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from contracts import GENESIS_HASH, ContractViolation, compute_hash, parse_message, validate_envelope
from contracts.canonical import canonical_json
from contracts.compatibility import breaking_changes
from contracts.export import GENERATED_DIR, RELEASED_DIR, generated_documents
from contracts.jsonschema import event_jsonschema
from contracts.registry import contract_for, published_contracts

REPO = Path(__file__).resolve().parents[2]


def sample_envelope() -> dict[str, object]:
    envelope: dict[str, object] = {
        "event_id": "8f14e45f-ceea-467f-a8f2-0f0f0f0f0f0f",
        "event_type": "ExpenditureRecorded",
        "schema_version": 1,
        "stream_id": "expenditure-8f14e45f-ceea-467f-a8f2-0f0f0f0f0f0f",
        "stream_position": 1,
        "occurred_at": "2024-03-01T09:00:00.000000Z",
        "recorded_at": "2024-03-01T09:00:01.250000Z",
        "producer": "ledger",
        "payload": {
            "expenditure_id": "8f14e45f-ceea-467f-a8f2-0f0f0f0f0f0f",
            "municipality_code": "GM0363",
            "grant_year": 2024,
            "category": "promotion",
            "amount_cents": 125000,
            "booked_on": "2024-03-01",
            "counterparty": {"id": "NL-KVK-12345678", "name": "Drukkerij"},
            "description": "Folders IDO",
            "reference": "INV-1",
        },
        "prev_hash": GENESIS_HASH,
    }
    envelope["hash"] = compute_hash(envelope)
    return envelope


def test_committed_generated_documents_are_current() -> None:
    expected = generated_documents()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in GENERATED_DIR.glob("*.json")}
    stale = sorted(name for name in expected if on_disk.get(name) != expected[name])
    extra = sorted(set(on_disk) - set(expected))
    assert not stale and not extra, (
        f"contracts/generated is stale (run `python -m contracts export`): changed {stale}, extra {extra}"
    )


def test_every_released_schema_is_still_served_without_breaking_changes() -> None:
    released = sorted(RELEASED_DIR.glob("*.schema.json"))
    assert released, "no released schemas kept under contracts/released"
    for path in released:
        old = json.loads(path.read_text(encoding="utf-8"))
        event_type, version = old["title"].rsplit(" v", 1)
        try:
            contract = contract_for(event_type, int(version))
        except KeyError:
            pytest.fail(f"{path.name}: released event type is no longer served")
        problems = breaking_changes(old, event_jsonschema(contract))
        assert not problems, f"{path.name}: breaking changes: {problems}"


def test_every_served_event_type_has_a_released_schema() -> None:
    names = {p.name for p in RELEASED_DIR.glob("*.schema.json")}
    missing = [
        f"{c.event_type}.v{c.schema_version}.schema.json"
        for c in published_contracts()
        if f"{c.event_type}.v{c.schema_version}.schema.json" not in names
    ]
    assert not missing, f"release them with `python -m contracts release`: {missing}"


def test_compatibility_check_catches_removed_renamed_and_retyped_fields() -> None:
    released = event_jsonschema(contract_for("ExpenditureRecorded", 1))
    removed = copy.deepcopy(released)
    del removed["properties"]["payload"]["properties"]["amount_cents"]
    retyped = copy.deepcopy(released)
    retyped["properties"]["payload"]["properties"]["amount_cents"]["type"] = "number"
    narrowed = copy.deepcopy(released)
    narrowed["properties"]["payload"]["properties"]["category"]["enum"] = ["promotion"]
    added = copy.deepcopy(released)
    added["properties"]["payload"]["properties"]["vat_cents"] = {"type": "integer"}

    assert breaking_changes(released, removed) == ["payload.amount_cents: removed"]
    assert breaking_changes(released, retyped) == ["payload.amount_cents: type changed from 'integer' to 'number'"]
    assert breaking_changes(released, narrowed)[0].startswith("payload.category: enum values removed")
    assert breaking_changes(released, added) == []


def test_a_valid_envelope_passes_marshmallow_and_its_json_schema() -> None:
    envelope = sample_envelope()
    assert parse_message(canonical_json(envelope)) == envelope
    schema = json.loads((GENERATED_DIR / "ExpenditureRecorded.v1.schema.json").read_text())
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(envelope)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e: e["payload"].update(amount_cents=12.5), "payload.amount_cents"),
        (lambda e: e["payload"].update(amount_cents="1250"), "payload.amount_cents"),
        (lambda e: e["payload"].update(category="coffee"), "payload.category"),
        (lambda e: e.update(recorded_at="2024-03-01 09:00"), "envelope: recorded_at"),
        (lambda e: e.pop("prev_hash"), "envelope: prev_hash"),
        (lambda e: e.update(event_type="Nope"), "event_type: unknown type"),
    ],
)
def test_an_envelope_breaking_its_contract_is_refused_with_the_field_named(change: object, reason: str) -> None:
    envelope = sample_envelope()
    change(envelope)  # type: ignore[operator]
    envelope["hash"] = compute_hash(envelope)
    with pytest.raises(ContractViolation) as refused:
        validate_envelope(envelope)
    assert refused.value.reason.startswith(reason)


def test_a_changed_payload_breaks_the_hash() -> None:
    envelope = sample_envelope()
    envelope["payload"]["amount_cents"] = 125001  # type: ignore[index]
    with pytest.raises(ContractViolation, match="^hash: does not match"):
        validate_envelope(envelope)


def test_contracts_package_stands_alone_without_the_services() -> None:
    code = (
        "import sys, contracts; contracts.all_contracts(); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('services', 'flask', 'eventsourcing', 'kafka')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
