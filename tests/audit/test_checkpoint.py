"""Signed checkpoints: what was reported on a date can be shown unchanged since, or not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka import KafkaProducer

from contracts.canonical import canonical_json
from services.audit.checkpoint import CheckpointRefused, checkpoint_worker, verify_checkpoint, write_checkpoint
from services.common.cli import main
from services.common.config import Settings
from services.ledger.entrypoints.definition import create_app
from tests.audit.support import record_history, tamper
from tests.audit.test_reconcile import raw_messages, recreate_topic
from tests.support.kafka_topics import admin_config
from tests.support.tokens import TokenFactory


def test_a_checkpoint_survives_honest_new_events_and_fails_after_tampering(live: Settings) -> None:
    services = record_history(live)
    services.publish()
    before = write_checkpoint(live, reason="test")
    assert before.parent == live.checkpoint_dir and live.checkpoint_key_file.exists()
    body = json.loads(before.read_text())["checkpoint"]
    assert body["stores"]["ledger"]["streams"][services.expenditures[1]["stream_id"]]["position"] == 2
    assert sum(p["offset"] for p in body["topics"][live.topic("ido.expenditures.v1")].values()) == 4

    services.spend("GM0344", 250_00, "2024-06-01")  # an honest new event, published
    services.publish()
    after_honest = verify_checkpoint(live, before)
    assert after_honest.ok, after_honest.lines()
    assert after_honest.streams == sum(len(s["streams"]) for s in body["stores"].values())
    later = write_checkpoint(live, reason="after the new event")
    services.close()

    tampered_stream = services.expenditures[0]["stream_id"]
    tamper(live, "ledger", tampered_stream, 1, '"amount_cents":1234567', '"amount_cents":1234500')
    for checkpoint in (before, later):
        report = verify_checkpoint(live, checkpoint)
        assert not report.ok
        assert len(report.problems) == 1 and f"stream {tampered_stream} position 1" in report.problems[0], (
            report.lines()
        )
    with pytest.raises(CheckpointRefused, match=tampered_stream):
        write_checkpoint(live, reason="over a broken history")


def test_a_changed_topic_or_checkpoint_file_fails_to_verify(live: Settings, tmp_path: Path) -> None:
    services = record_history(live)
    services.publish()
    services.close()
    path = write_checkpoint(live)
    topic = live.topic("ido.grants.v1")
    # history on the wire rewritten below the checkpoint's offsets: the topic recreated differently
    messages = raw_messages(admin_config(live), topic)
    recreate_topic(admin_config(live), topic, list(reversed(messages)))
    report = verify_checkpoint(live, path)
    assert not report.ok and all(topic in p for p in report.problems), report.lines()

    # the checkpoint itself edited: its signature no longer matches
    document = json.loads(path.read_text())
    first_stream = next(iter(document["checkpoint"]["stores"]["ledger"]["streams"]))
    document["checkpoint"]["stores"]["ledger"]["streams"][first_stream]["hash"] = "0" * 64
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(document))
    assert verify_checkpoint(live, edited).problems == [
        "the signature does not match the checkpoint's content (the file was changed)"
    ]
    # signed by someone else's key
    other = tmp_path / "other.pem"
    from services.common.auth import generate_keypair

    generate_keypair(tmp_path / "other-private.pem", other)
    assert verify_checkpoint(live, path, public_key_file=other).problems == [
        "signed with another key than the trusted public key"
    ]


def test_closing_a_year_writes_a_checkpoint(
    live: Settings, tokens: TokenFactory, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = record_history(live)
    services.publish()
    services.close()
    client = create_app(live).test_client()
    closed = client.post(
        "/v1/municipalities/GM0363/years/2024/close",
        headers=tokens.headers("auditor"),
        json={"final_account": True, "closed_on": "2025-03-01"},
    )
    assert closed.status_code == 201, closed.json
    worker = checkpoint_worker(live)
    assert worker.wait(60) and not worker.failures
    [path] = worker.written
    body = json.loads(path.read_text())["checkpoint"]
    assert "year 2024 closed for GM0363" in body["reason"] and closed.json["event_id"] in body["reason"]
    assert body["stores"]["ledger"]["streams"]["books-GM0363-2024"] == {
        "position": 1, "hash": body["stores"]["ledger"]["streams"]["books-GM0363-2024"]["hash"]
    }
    assert verify_checkpoint(live, path).ok
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for argv in (["audit", "checkpoint", "--reason", "by hand"], ["audit", "verify", "--checkpoint", str(path)]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0, argv
    assert len(list(live.checkpoint_dir.glob("checkpoint-*.json"))) == 2
    # a forged message appended later changes nothing below the checkpoint's offsets
    producer = KafkaProducer(**admin_config(live), acks="all")
    producer.send(live.topic("ido.expenditures.v1"), key=b"GM0363", value=canonical_json({"forged": True}))
    producer.flush()
    producer.close()
    assert verify_checkpoint(live, path).ok
