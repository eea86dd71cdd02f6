"""`ido audit reconcile`: each event store against its topic, naming exactly what one side lacks."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from contracts.topics import EXPENDITURES
from services.audit.reconcile import reconcile
from services.common.adapters.kafka import ClientConfig
from services.common.cli import main
from services.common.config import Settings
from tests.audit.support import delete_stored, record_history
from tests.support.kafka_topics import admin_config
from tests.support.waiting import wait_until


def raw_messages(kafka_config: ClientConfig, topic: str) -> list[tuple[bytes, bytes]]:
    return [(m.key, m.value) for m in topic_records(kafka_config, topic)]


def values_by_partition(kafka_config: ClientConfig, topic: str) -> dict[int, list[bytes]]:
    found: dict[int, list[bytes]] = {}
    for record in topic_records(kafka_config, topic):
        found.setdefault(record.partition, []).append(record.value)
    return found


def topic_records(kafka_config: ClientConfig, topic: str) -> list[Any]:
    """Every record of ``topic``, partition by partition, read to the end offsets of when it began."""
    consumer = KafkaConsumer(**kafka_config, group_id=None, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    found: list[Any] = []
    deadline = time.monotonic() + 60
    try:
        for _poll in range(240):  # polls of up to 0.5 s: the count and the deadline bound the same 2 minutes
            if all(consumer.position(tp) >= ends[tp] for tp in partitions):
                return sorted(found, key=lambda m: (m.partition, m.offset))
            assert time.monotonic() < deadline, f"{topic}: not read to its end {ends} within 60 s"
            for batch in consumer.poll(timeout_ms=500).values():
                found.extend(batch)
        raise AssertionError(f"{topic}: not read to its end {ends} in 240 polls")
    finally:
        consumer.close()


def recreate_topic(kafka_config: ClientConfig, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    admin = KafkaAdminClient(**kafka_config)
    admin.delete_topics([topic])
    def created() -> bool:
        try:
            admin.create_topics([NewTopic(topic, EXPENDITURES.partitions, 1, topic_configs=EXPENDITURES.config)])
        except TopicAlreadyExistsError:  # still being deleted
            return False
        return True

    wait_until(created, 30, f"{topic} created anew after its deletion", interval_s=0.2)
    admin.close()
    producer = KafkaProducer(**kafka_config, acks="all")
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def test_a_topic_recreated_without_one_event_is_named_exactly(
    live: Settings, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = record_history(live)
    services.publish()
    services.close()
    assert reconcile(live).ok

    topic = live.topic(EXPENDITURES.name)
    messages = raw_messages(admin_config(live), topic)
    assert len(messages) == 4
    lost = services.expenditures[-1]  # the last posting's only event
    kept = [(k, v) for k, v in messages if lost["event_id"].encode() not in v]
    assert len(kept) == 3
    recreate_topic(admin_config(live), topic, kept)

    report = reconcile(live)
    assert [(d.service, d.stream_id, d.position, d.problem) for d in report.differences] == [
        ("ledger", lost["stream_id"], 1, "missing on the topic")
    ], report.lines()
    assert lost["event_id"] in report.differences[0].detail
    ledger = next(s for s in report.summaries if s.service == "ledger")
    assert (ledger.store_events, ledger.topic_events) == (4, 3)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "reconcile", "--json"])
    assert exit_.value.code == 1


def test_an_event_deleted_from_a_store_and_one_not_yet_published_are_told_apart(live: Settings) -> None:
    services = record_history(live)
    services.publish()
    reversed_stream = services.expenditures[1]["stream_id"]
    late = services.spend("GM0363", 100, "2024-05-01")  # stored, the relay has not run since
    services.close()
    delete_stored(live, "ledger", reversed_stream, 2)  # the reversal: the store's chain still looks whole

    report = reconcile(live)
    assert [(d.service, d.stream_id, d.position, d.problem) for d in report.differences] == [
        ("ledger", reversed_stream, 2, "missing in the store")
    ], report.lines()
    ledger = next(s for s in report.summaries if s.service == "ledger")
    assert ledger.not_yet_published == 1 and late["stream_id"] not in str(report.as_dict()["differences"])
