"""`ido recover store SERVICE`: a lost event store re-recorded from its topic (issue 19, Must show 3).

Each test runs the real command on SQLite and on PostgreSQL against the real broker: the history is
recorded through the services' own applications and published by their relays, the store is "lost" (the
services are pointed at an empty data directory or database with the same keys and topics), and
`ido recover store` writes it again from the topic.
"""

from __future__ import annotations

import time
import uuid
from datetime import date
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from contracts.canonical import canonical_json, compute_hash
from contracts.topics import EXPENDITURES, GRANTS
from services.audit.sources import open_store, relay_position, topic_of_service
from services.common.cli import main
from services.common.config import Settings
from services.common.definition import SERVICE_NAMES
from services.common.eventstore import build_application
from services.ledger.application.app import LedgerApplication
from services.payments.application.app import PaymentsApplication
from tests.audit.support import CODES, record_history
from tests.support.kafka_topics import admin_config, publish_all, read_envelopes

Stored = dict[str, tuple[Any, int, str, dict[str, Any]]]


def ido(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *argv: str) -> int:
    """Runs `ido ARGV` as an operator would, with ``env`` as its environment; returns its exit status."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    return int(exit_.value.code or 0)


def stored(settings: Settings, service: str) -> Stored:
    """{event_id: (originator id, version, stored topic, the stored state decoded)}: everything a store holds."""
    application = open_store(settings, service)
    try:
        found: Stored = {}
        for notification in application.recorder.select_notifications(start=0, limit=10_000):
            state = application.mapper.transcoder.decode(notification.state)
            found[state["event_id"]] = (notification.originator_id, notification.originator_version,
                                        notification.topic, state)
        return found
    finally:
        application.close()


def recorded_and_published(live: Settings) -> dict[str, Stored]:
    services = record_history(live)
    services.publish()
    services.close()
    return {service: stored(live, service) for service in SERVICE_NAMES}


def test_each_lost_store_is_recorded_again_as_it_was_and_the_services_write_on(
    live: Settings, lost: Settings, lost_env: dict[str, str], env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    original = recorded_and_published(live)
    assert {service: len(events) for service, events in original.items()} == {
        "payments": 10, "bridge": len(original["bridge"]), "ledger": 4,
    }
    assert len(original["bridge"]) > 0

    for service in SERVICE_NAMES:
        assert ido(monkeypatch, lost_env, "recover", "store", service) == 0, capsys.readouterr()
        said = capsys.readouterr().out
        assert f"recovered {service} from {topic_of_service(lost, service)}: {len(original[service])} events" in said
        # Every event as it was stored: ids, stream and position, stored topic, time, hash, chain, writer MAC,
        # the aggregate's class of a first event.
        assert stored(lost, service) == original[service]
        application = open_store(lost, service)
        try:
            # the relay's position is the last event: all of them are on the topic already
            assert relay_position(application, topic_of_service(lost, service)) == len(original[service])
            # every aggregate loads, its head the last recorded hash of its stream
            heads: dict[Any, tuple[int, str]] = {}
            for originator_id, version, _topic, state in original[service].values():
                if version > heads.get(originator_id, (0, ""))[0]:
                    heads[originator_id] = (version, state["hash"])
            for originator_id, (version, head) in heads.items():
                aggregate = application.repository.get(originator_id)
                assert (aggregate.version, aggregate.chain_head) == (version, head)
        finally:
            application.close()

    # The services start again on the recovered stores: their next events chain onto the recovered heads.
    payments = build_application(PaymentsApplication, lost.eventsourcing_env("payments"))
    scheme = payments.amend_frame(2024, 1_713_000_001, date(2024, 6, 1), reason="after the recovery")
    ledger = build_application(LedgerApplication, lost.eventsourcing_env("ledger"))
    posted = ledger.record_expenditure(CODES[2], {
        "grant_year": 2024, "category": "promotion", "amount_cents": 1_00, "booked_on": date(2024, 6, 2),
        "counterparty": {"id": "NL-KVK-41215098", "name": "OBA"}, "description": "after", "reference": "R-1",
    })
    assert posted[0] == 201
    # only the new events go out: the relay resumes after the recovered ones
    assert publish_all(lost, payments, GRANTS) == 1
    assert publish_all(lost, ledger, EXPENDITURES) == 1
    payments.close()
    ledger.close()
    amended = read_envelopes(admin_config(lost), lost.topic(GRANTS.name), 11)
    assert len(amended) == 11
    last = next(e for _k, e in amended if e["stream_id"] == scheme.stream_id and e["stream_position"] == 2)
    first = next(e for _k, e in amended if e["stream_id"] == scheme.stream_id and e["stream_position"] == 1)
    assert last["prev_hash"] == first["hash"]
    assert ido(monkeypatch, lost_env, "audit", "verify") == 0, capsys.readouterr()
    assert "verified: every chain is intact" in capsys.readouterr().out


def test_a_store_that_holds_events_is_refused_and_left_as_it_was(
    live: Settings, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    original = recorded_and_published(live)
    assert ido(monkeypatch, env, "recover", "store", "ledger") == 1
    said = capsys.readouterr().out
    table = "stored_events" if live.event_store == "sqlite" else "ledger_events"
    assert f"the store is not empty: table {table} holds 4 events" in said
    assert "nothing written" in said
    assert stored(live, "ledger") == original["ledger"]


def test_a_forged_message_on_the_topic_refuses_the_whole_recovery(
    live: Settings, lost: Settings, lost_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recorded_and_published(live)
    topic = live.topic(GRANTS.name)
    envelopes = read_envelopes(admin_config(live), topic, 10)
    key, advance = next((k, e) for k, e in envelopes if e["event_type"] == "AdvancePaid")
    # A forger who knows the hash rule but not the relay's key: the next event of a grant, chained correctly.
    forged = {**advance, "event_id": str(uuid.uuid4()), "stream_position": advance["stream_position"] + 1,
              "prev_hash": advance["hash"], "payload": {**advance["payload"], "amount_cents": 1_00}}
    forged["hash"] = compute_hash(forged)
    producer = KafkaProducer(**admin_config(live), acks="all")
    sent = producer.send(topic, key=key.encode(), value=canonical_json(forged)).get(timeout=30)
    producer.close()
    assert sent.offset >= 0

    assert ido(monkeypatch, lost_env, "recover", "store", "payments") == 1
    said = capsys.readouterr().out
    assert f"event {forged['event_id']} refused" in said, said
    assert f"nothing written: {topic} does not hold an intact history" in said
    assert stored(lost, "payments") == {}
    application = open_store(lost, "payments")
    try:
        assert relay_position(application, topic) == 0
    finally:
        application.close()


def test_copies_the_relay_sent_again_are_recorded_once(
    live: Settings, lost: Settings, lost_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    original = recorded_and_published(live)
    topic = live.topic(EXPENDITURES.name)
    # As a relay that crashed before it recorded its position sends a page again: the same messages, seals too.
    consumer = KafkaConsumer(**admin_config(live), enable_auto_commit=False, group_id=None)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records: list[Any] = []
    deadline = time.monotonic() + 30
    while len(records) < 4 and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    consumer.close()
    assert len(records) == 4
    producer = KafkaProducer(**admin_config(live), acks="all")
    for record in records:
        producer.send(topic, key=record.key, value=record.value, headers=record.headers,
                      partition=record.partition).get(timeout=30)
    producer.close()
    assert len(read_envelopes(admin_config(live), topic, 8)) == 8

    assert ido(monkeypatch, lost_env, "recover", "store", "ledger") == 0, capsys.readouterr()
    assert "4 events in 3 streams (4 re-sent copies dropped)" in capsys.readouterr().out
    assert stored(lost, "ledger") == original["ledger"]
