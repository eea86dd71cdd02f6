"""Attacks on provenance, on the real broker and both stores (docs/audit.md#provenance).

1. A client that may write a topic but holds no signing key produces a valid, self-hashed event:
   unsigned, with a genuine seal copied from another message, signed with its own key, and signed
   with the key of a service that does not own the topic. The projector dead-letters each with its
   reason and never counts it; `ido audit replay` and `ido audit verify` refuse it, naming topic,
   partition, offset and event id, and exit 1.
2. Someone who can write the event store (SQL) but has not the record key inserts an event with a
   correct hash: the relay publishes it without a seal and every consumer refuses it.
3. A genuine message produced again, headers and all: counted once.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kafka import KafkaProducer
from sqlalchemy import func, insert, select

from contracts.canonical import canonical_json, compute_hash
from contracts.provenance import PROOF_HEADER, SEAL_HEADER, key_id, seal_header, statement_bytes
from contracts.topics import BRIDGE, EXPENDITURES, GRANTS
from services.audit.replay import replay_topics
from services.audit.verify import verify
from services.common.adapters.kafka import client_config
from services.common.adapters.sql import create_sql_engine
from services.common.cli import main
from services.common.config import Settings
from services.common.consumer import applied_events
from services.common.definition import service_definition
from services.common.domain.chained import recorded_envelope, stream_uuid
from services.common.eventstore import build_application
from services.common.kafka_credentials import AUDIT, relay_principal
from services.common.signing import seal_envelopes
from services.ledger.application.app import LedgerApplication
from services.ledger.read_side import LedgerQueries, PointInTime
from tests.audit.support import CODES, events_table, project, record_history
from tests.foundation.test_relay_and_consumer import read_topic
from tests.support.kafka_topics import publish_all


def _records(settings: Settings, topic: str, expected: int) -> list[Any]:
    return read_topic(client_config(settings, AUDIT), topic, expected_at_least=expected)


def _forged_expenditure(genuine: dict[str, Any], amount_cents: int) -> dict[str, Any]:
    """A new ExpenditureRecorded in a new stream, valid in every way a forger can make it."""
    expenditure_id = str(uuid.uuid4())
    forged = {
        **genuine, "event_id": str(uuid.uuid4()), "stream_id": f"expenditure-{expenditure_id}", "stream_position": 1,
        "prev_hash": "0" * 64, "payload": {**genuine["payload"], "expenditure_id": expenditure_id,
                                           "amount_cents": amount_cents},
    }
    forged["hash"] = compute_hash(forged)
    return forged


def _dead_letters(settings: Settings, expected: int) -> list[Any]:
    return _records(settings, settings.topic("ido.deadletter.v1"), expected)


def _cli(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         *argv: str) -> tuple[int, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    return int(exit_.value.code or 0), capsys.readouterr().out


def test_forged_messages_from_a_client_without_a_signing_key_are_refused_everywhere(
    live: Settings, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    services = record_history(live)
    services.publish()
    services.close()
    topic = live.topic(EXPENDITURES.name)
    genuine = _records(live, topic, 4)
    before = replay_topics(live).balances(CODES[0], 2024)  # the honest balances

    template = json.loads(genuine[0].value)
    unsigned = _forged_expenditure(template, 1_000_000_00)
    copied = _forged_expenditure(template, 2_000_000_00)
    own_key = _forged_expenditure(template, 3_000_000_00)
    other_owner = _forged_expenditure(template, 4_000_000_00)
    # its own Ed25519 key, under a key id shaped like the ledger's
    stranger = Ed25519PrivateKey.generate()
    raw = stranger.public_key().public_bytes_raw()
    copied_seal = dict(genuine[0].headers)
    statement = json.loads(copied_seal[SEAL_HEADER])
    statement.pop("signature")
    statement["kid"] = key_id("ledger", raw)
    from contracts.merkle import leaf_hash

    statement.update(root=leaf_hash(bytes.fromhex(own_key["hash"])).hex(), size=1)
    own_headers = [(SEAL_HEADER, seal_header(statement, stranger.sign(statement_bytes(statement)))),
                   (PROOF_HEADER, b"0:")]
    # the payments service's key (held by someone who may write the expenditures topic)
    [payments_seal] = seal_envelopes(live, EXPENDITURES.name, [other_owner], service="payments")
    forged = {
        unsigned["event_id"]: ("provenance: unsigned (no ido-seal header)", unsigned, []),
        copied["event_id"]: ("provenance: the event is not covered by its seal", copied,
                             [(SEAL_HEADER, copied_seal[SEAL_HEADER]), (PROOF_HEADER, copied_seal[PROOF_HEADER])]),
        own_key["event_id"]: (f"provenance: unknown key '{key_id('ledger', raw)}'", own_key, own_headers),
        other_owner["event_id"]: ("does not own topic ido.expenditures.v1 (owner 'ledger')", other_owner,
                                  payments_seal),
    }
    # The forger holds the ledger relay's broker login (the broker lets it write this topic) but no key.
    producer = KafkaProducer(**client_config(live, relay_principal("ledger")), acks="all")
    for _reason, envelope, headers in forged.values():
        producer.send(topic, key=CODES[0].encode(), value=canonical_json(envelope), headers=headers)
    producer.flush()
    producer.close()

    # the projector: dead-lettered with the reason, never counted
    project(live, expected=len(genuine) + len(forged) + 8 + 6)  # + grants + bridge messages
    dead = _dead_letters(live, len(forged))
    reasons = {json.loads(m.value)["event_id"]: dict(m.headers)["reason"].decode() for m in dead}
    assert set(reasons) == set(forged), reasons
    for event_id, (expected, _e, _h) in forged.items():
        assert expected in reasons[event_id], (expected, reasons[event_id])
    view = create_sql_engine(live.view_db_url)
    with view.connect() as connection:
        applied = set(connection.execute(select(applied_events.c.event_id)).scalars())
    assert not applied & set(forged)
    live_books = LedgerQueries(view).balances(CODES[0], 2024, PointInTime())
    assert live_books["spent_cents"] == before["spent_cents"]
    view.dispose()

    # the audit replay: not counted, each named; the command exits 1
    replay = replay_topics(live)
    assert replay.balances(CODES[0], 2024)["spent_cents"] == before["spent_cents"]
    assert len(replay.stats.unproven) == len(forged)
    for refusal in replay.stats.unproven:
        assert refusal.startswith(f"topic {topic} partition ") and " offset " in refusal
        assert any(f"event {event_id}: refused, " in refusal for event_id in forged)
    code, out = _cli(env, monkeypatch, capsys, "audit", "replay", "--out", str(tmp_path / "replay"))
    assert code == 1
    for event_id, (expected, _e, _h) in forged.items():
        line = next(line for line in out.splitlines() if event_id in line)
        assert line.startswith(f"REFUSED topic {topic} partition ") and " offset " in line and expected in line

    # the audit verify: a break per forged message, named; the command exits 1
    report = verify(live, stores=False)
    refused = [b for b in report.breaks if "provenance:" in b.problem]
    assert {b.problem.split()[1] for b in refused} == set(forged), report.lines()
    assert all(b.side == f"topic {topic}" and b.where.startswith("partition ") and " offset " in b.where
               for b in refused)
    code, out = _cli(env, monkeypatch, capsys, "audit", "verify", "--topics-only")
    assert code == 1
    assert all(any(event_id in line and "offset" in line for line in out.splitlines()) for event_id in forged)


def test_an_event_written_into_the_store_without_the_record_key_goes_out_unsealed_and_is_refused(
    live: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    services = record_history(live)
    services.close()
    # an SQL writer copies a stored expenditure into a new stream with a correct hash (it cannot make the MAC)
    ledger = build_application(LedgerApplication, live.eventsourcing_env("ledger"))
    try:
        first = ledger.recorder.select_notifications(start=1, limit=1)[0]
        _key, template = recorded_envelope(ledger.mapper, first)
    finally:
        ledger.close()
    engine, table = events_table(live, "ledger")
    forged = _forged_expenditure(template, 5_000_000_00)
    state = json.loads(bytes(first.state))
    state.update(event_id=forged["event_id"], stream_id=forged["stream_id"], **forged["payload"], hash=forged["hash"])
    originator = stream_uuid(forged["stream_id"])
    with engine.begin() as connection:
        connection.execute(insert(table).values(
            originator_id=originator.hex if live.event_store == "sqlite" else originator, originator_version=1,
            topic=first.topic, state=json.dumps(state).encode(),
        ))
        assert connection.execute(select(func.count()).select_from(table)).scalar_one() > 1
    engine.dispose()
    for spec in (GRANTS, BRIDGE, EXPENDITURES):  # every store through its relay
        application = build_application(service_definition(spec.producer).application_class,
                                        live.eventsourcing_env(spec.producer))
        publish_all(live, application, spec)
        application.close()
    assert f"event {forged['event_id']} has a wrong record MAC" in caplog.text

    topic = live.topic(EXPENDITURES.name)
    on_topic = _records(live, topic, 5)
    published = next(m for m in on_topic if json.loads(m.value)["event_id"] == forged["event_id"])
    assert SEAL_HEADER not in dict(published.headers)
    project(live, expected=5 + 8 + 6)
    [dead] = _dead_letters(live, 1)
    assert json.loads(dead.value)["event_id"] == forged["event_id"]
    assert dict(dead.headers)["reason"] == b"provenance: unsigned (no ido-seal header)"
    replay = replay_topics(live)
    assert [forged["event_id"] in r for r in replay.stats.unproven] == [True]


def test_a_genuine_message_produced_again_is_counted_once(live: Settings) -> None:
    services = record_history(live)
    services.publish()
    services.close()
    topic = live.topic(EXPENDITURES.name)
    genuine = _records(live, topic, 4)
    again = genuine[0]
    producer = KafkaProducer(**client_config(live, relay_principal("ledger")), acks="all")
    for _ in range(2):
        producer.send(topic, key=again.key, value=again.value, headers=again.headers)  # byte for byte
    producer.flush()
    producer.close()
    event_id = json.loads(again.value)["event_id"]

    project(live, expected=4 + 2 + 8 + 6)
    view = create_sql_engine(live.view_db_url)
    with view.connect() as connection:
        assert connection.execute(
            select(func.count()).select_from(applied_events).where(applied_events.c.event_id == event_id)
        ).scalar_one() == 1
    view.dispose()
    replay = replay_topics(live)
    assert replay.stats.duplicates == 2 and replay.stats.unproven == []
    assert replay.stats.applied == replay.stats.messages - 2
    report = verify(live, stores=False)
    assert report.ok, report.lines()
