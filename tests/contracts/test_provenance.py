"""contracts.provenance: each way a seal can fail has its own reason; a good seal costs one signature
check per batch; the published schemas describe what the relay writes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from contracts.canonical import GENESIS_HASH
from contracts.envelope import ContractViolation
from contracts.provenance import (
    KEYSET_JSON_SCHEMA,
    PROOF_HEADER,
    SEAL_HEADER,
    SEAL_HEADERS_JSON_SCHEMA,
    KeySet,
    ProvenanceCheck,
    proof_header,
    seal_header,
    seal_statement,
    statement_bytes,
)
from services.common.config import load_settings
from services.common.domain.chained import build_envelope
from services.common.signing import Sealer, ensure_record_key, record_mac, service_keys

TOPIC = "ido.expenditures.v1"


def envelope(recorded_at: str = "2024-03-01T09:00:00.000000Z", producer: str = "ledger") -> dict[str, Any]:
    return build_envelope(
        event_id=str(uuid.uuid4()), event_type="YearClosed", schema_version=1, stream_id=f"books-{uuid.uuid4()}",
        stream_position=1, occurred_at=recorded_at, recorded_at=recorded_at, producer=producer,
        payload={"municipality_code": "GM0363", "grant_year": 2024, "closed_on": "2025-03-01",
                 "closed_by": "ministry", "final_account": True},
        prev_hash=GENESIS_HASH,
    )


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    settings = load_settings({"IDO_KEYS_DIR": str(tmp_path / "keys"), "IDO_TOPIC_PREFIX": "p."})
    ledger = service_keys(settings, "ledger", [TOPIC])
    ledger.ensure()
    payments = service_keys(settings, "payments", ["ido.grants.v1"])
    payments.ensure()
    record_key = ensure_record_key(settings.signing_dir("ledger") / "record.key")
    sealer = Sealer(service="ledger", topic=TOPIC, record_key=record_key, keys=ledger)
    check = ProvenanceCheck(keyset_file=settings.trusted_keyset_file, topic_prefix="p.")
    return {"settings": settings, "sealer": sealer, "check": check, "ledger": ledger, "payments": payments}


def sealed(sealer: Sealer, envelopes: list[dict[str, Any]]) -> list[list[tuple[str, bytes]]]:
    return sealer.seal(envelopes, [record_mac(sealer.record_key, e["hash"]) for e in envelopes])


def reason(check: ProvenanceCheck, topic: str, env: dict[str, Any], headers: Any) -> str:
    with pytest.raises(ContractViolation) as refused:
        check.check(topic, env, headers)
    return refused.value.reason


def test_a_batch_is_proven_with_one_signature_check(world: dict[str, Any]) -> None:
    envelopes = [envelope() for _ in range(37)]
    headers = sealed(world["sealer"], envelopes)
    check: ProvenanceCheck = world["check"]
    for env, h in zip(envelopes, headers, strict=True):
        check.check(f"p.{TOPIC}", env, h)
    assert check.signatures_verified == 1
    assert len({dict(h)[SEAL_HEADER] for h in headers}) == 1
    assert world["sealer"].stats.sealed == 37
    # the headers are what the published schema describes
    jsonschema.validate({k: v.decode() for k, v in headers[5]}, SEAL_HEADERS_JSON_SCHEMA)
    seal = json.loads(dict(headers[5])[SEAL_HEADER])
    jsonschema.validate(seal, SEAL_HEADERS_JSON_SCHEMA["properties"][SEAL_HEADER]["contentSchema"])
    jsonschema.validate(json.loads(world["settings"].trusted_keyset_file.read_text()), KEYSET_JSON_SCHEMA)


def test_every_refusal_names_its_reason(world: dict[str, Any], tmp_path: Path) -> None:
    check: ProvenanceCheck = world["check"]
    sealer: Sealer = world["sealer"]
    topic = f"p.{TOPIC}"
    a, b = envelope(), envelope()
    ha, hb = sealed(sealer, [a, b])
    assert reason(check, topic, a, []) == "provenance: unsigned (no ido-seal header)"
    assert reason(check, topic, a, None) == "provenance: unsigned (no ido-seal header)"
    assert reason(check, topic, a, [ha[0]]) == "provenance: no ido-seal-proof header"
    # a genuine seal and proof on another event (a forger copying headers)
    forged = envelope()
    assert reason(check, topic, forged, ha).startswith("provenance: the event is not covered by its seal")
    # b's proof with a's seal: the path is b's, the leaf is a's
    assert reason(check, topic, a, [ha[0], hb[1]]).startswith("provenance: the event is not covered")
    # on another topic (the same seal, copied to the grants topic)
    assert reason(check, "p.ido.grants.v1", a, ha).startswith("provenance: key ledger-")
    assert "does not own topic ido.grants.v1 (owner 'payments')" in reason(check, "p.ido.grants.v1", a, ha)
    # a key of another service sealing this topic
    other = Sealer(service="payments", topic=TOPIC, record_key=sealer.record_key, keys=world["payments"])
    hp = sealed(other, [a])[0]
    assert "of 'payments' does not own topic ido.expenditures.v1 (owner 'ledger')" in reason(check, topic, a, hp)
    # the event's producer is not the sealing service
    wrong_producer = envelope(producer="payments")
    assert "the event's producer 'payments' is not the seal's 'ledger'" in reason(
        check, topic, wrong_producer, sealed(sealer, [wrong_producer])[0]
    )
    # an unknown key (the forger's own), a bad signature, a malformed seal
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    statement = json.loads(dict(ha)[SEAL_HEADER])
    signature = statement.pop("signature")
    stranger = Ed25519PrivateKey.generate()
    unknown = {**statement, "kid": "ledger-0123456789abcdef"}
    assert reason(check, topic, a, [(SEAL_HEADER, seal_header(unknown, stranger.sign(statement_bytes(unknown)))),
                                    ha[1]]) == "provenance: unknown key 'ledger-0123456789abcdef'"
    resigned = seal_header(statement, stranger.sign(statement_bytes(statement)))
    assert reason(check, topic, a, [(SEAL_HEADER, resigned), ha[1]]).startswith("provenance: bad signature")
    bigger = {**statement, "size": statement["size"] + 1, "signature": signature}
    assert reason(check, topic, a, [(SEAL_HEADER, json.dumps(bigger).encode()), ha[1]]).startswith(
        "provenance: bad signature"
    )
    assert reason(check, topic, a, [(SEAL_HEADER, b"{"), ha[1]]).startswith("provenance: malformed ido-seal")
    assert reason(check, topic, a, [ha[0], (PROOF_HEADER, b"x")]).startswith("provenance: malformed ido-seal-proof")
    # an event recorded after the seal that covers it
    late = envelope(recorded_at="2999-01-01T00:00:00.000000Z")
    private = sealer._current.private if sealer._current else None  # the ledger's own key, as a thief would
    assert private is not None
    root_statement = seal_statement(kid=statement["kid"], producer="ledger", topic=TOPIC,
                                    root=bytes.fromhex(_leaf_root(late)), size=1,
                                    sealed_at="2998-01-01T00:00:00.000000Z")
    late_headers = [(SEAL_HEADER, seal_header(root_statement, private.sign(statement_bytes(root_statement)))),
                    (PROOF_HEADER, proof_header(0, b""))]
    assert reason(check, topic, late, late_headers).startswith("provenance: recorded_at 2999-01-01")


def _leaf_root(env: dict[str, Any]) -> str:
    from contracts.merkle import leaf_hash

    return leaf_hash(bytes.fromhex(env["hash"])).hex()


def test_rotation_old_seals_stay_valid_a_retired_key_is_refused_after_retirement(world: dict[str, Any]) -> None:
    check: ProvenanceCheck = world["check"]
    sealer: Sealer = world["sealer"]
    topic = f"p.{TOPIC}"
    before = envelope(recorded_at="2024-01-01T00:00:00.000000Z")
    old_headers = sealed(sealer, [before])[0]
    old = sealer._current
    assert old is not None
    new = world["ledger"].rotate()
    after = envelope()
    new_headers = sealed(sealer, [after])[0]  # the sealer takes the new key up without a restart
    assert json.loads(dict(new_headers)[SEAL_HEADER])["kid"] == new.kid != old.entry.kid
    check._looked_at = 0.0  # (the check looks at the key set's file at most once a second)
    check.check(topic, before, old_headers)  # sealed before the rotation: still valid
    check.check(topic, after, new_headers)
    # a thief of the retired key seals a new event now
    statement = seal_statement(kid=old.entry.kid, producer="ledger", topic=TOPIC,
                               root=bytes.fromhex(_leaf_root(after)), size=1, sealed_at="2999-01-01T00:00:00.000000Z")
    stolen = [(SEAL_HEADER, seal_header(statement, old.private.sign(statement_bytes(statement)))),
              (PROOF_HEADER, proof_header(0, b""))]
    refused = reason(check, topic, after, stolen)
    assert refused.startswith(f"provenance: key {old.entry.kid} retired at ") and "2999" in refused
    # not yet valid: the new key before its not_before
    early = seal_statement(kid=new.kid, producer="ledger", topic=TOPIC, root=bytes.fromhex(_leaf_root(before)),
                           size=1, sealed_at="2000-01-01T00:00:00.000000Z")
    private = sealer._current.private if sealer._current else None
    assert private is not None
    early_headers = [(SEAL_HEADER, seal_header(early, private.sign(statement_bytes(early)))),
                     (PROOF_HEADER, proof_header(0, b""))]
    assert "not yet valid at 2000-01-01" in reason(check, topic, before, early_headers)


def test_an_event_without_a_right_mac_is_left_unsealed(world: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    sealer: Sealer = world["sealer"]
    good, no_mac, wrong_mac = envelope(), envelope(), envelope()
    headers = sealer.seal([good, no_mac, wrong_mac], [record_mac(sealer.record_key, good["hash"]), None,
                                                      record_mac(b"x" * 32, wrong_mac["hash"])])
    assert headers[1] == [] and headers[2] == [] and headers[0]
    assert sealer.stats.unsealed == 2 and sealer.stats.unsealed_event_ids == [no_mac["event_id"], wrong_mac["event_id"]]
    assert no_mac["event_id"] in caplog.text and wrong_mac["event_id"] in caplog.text
    world["check"].check(f"p.{TOPIC}", good, headers[0])


def test_a_fixed_key_set_and_its_validation() -> None:
    with pytest.raises(ValueError, match="key id does not derive"):
        KeySet.from_document({"keys": [{"kid": "ledger-0000000000000000", "service": "ledger", "alg": "Ed25519",
                                        "public_key": "A" * 43, "topics": [TOPIC],
                                        "not_before": "2024-01-01T00:00:00.000000Z", "not_after": None}]})
    with pytest.raises(ValueError, match="either"):
        ProvenanceCheck()


def test_the_memo_of_proven_nodes_never_accepts_what_the_path_does_not_prove() -> None:
    """The check remembers the tree nodes it proved per seal; any order of leaves is accepted, and a
    wrong leaf, index or path is refused however many nodes are already known."""
    import random

    from contracts.merkle import all_inclusion_paths, leaf_hash
    from contracts.provenance import _covered, _Seal, b64url

    rng = random.Random(5)
    for size in (*range(1, 40), 257, 500):
        leaves = [leaf_hash(rng.randbytes(32)) for _ in range(size)]
        root, joined = all_inclusion_paths(leaves)
        paths = [b64url(path).encode() for path in joined]
        seal = _Seal(None, "ledger", TOPIC, root, size, "2024-01-01T00:00:00.000000Z")  # type: ignore[arg-type]
        nodes: dict[int, bytes] = {}
        order = list(range(size))
        rng.shuffle(order)
        for step, index in enumerate(order):
            stranger = leaf_hash(rng.randbytes(32))
            assert not _covered(seal, nodes, stranger, index, paths[index]), (size, index)
            if size > 1:
                assert not _covered(seal, nodes, leaves[index], (index + 1) % size, paths[index]), (size, index)
            assert not _covered(seal, nodes, leaves[index], size, paths[index])
            assert _covered(seal, nodes, leaves[index], index, paths[index]), (size, index, step)
        assert all(_covered(seal, {}, leaves[i], i, paths[i]) for i in range(size))
