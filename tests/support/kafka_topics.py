"""Publishing a service's store through its relay, and reading a topic back, for integration tests."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import jsonschema
from eventsourcing.application import Application
from kafka import KafkaConsumer, TopicPartition

from contracts.export import GENERATED_DIR
from contracts.topics import TopicSpec
from services.common.adapters.kafka import ClientConfig, client_config, create_producer, ensure_topics
from services.common.config import Settings
from services.common.kafka_credentials import ADMIN, RELAYS
from services.common.relay import OutboxRelay
from services.common.signing import build_sealer


def admin_config(settings: Settings) -> dict[str, Any]:
    """The admin's client settings, for a test's own set-up (never for what a test shows about access)."""
    return client_config(settings, ADMIN)


@contextmanager
def service_relay(settings: Settings, application: Application, topic: TopicSpec) -> Iterator[OutboxRelay]:
    """The outbox relay of ``application`` to ``topic``, its producer closed after: as the service's relay
    principal for the service topics (provisioned by the ``topic_prefix`` fixture), as the admin for a
    test-only topic (which it creates). Its batches are sealed as the service's relay seals them."""
    principal = RELAYS.get(topic.producer)
    if principal is None:
        principal = ADMIN
        ensure_topics(admin_config(settings), [topic], settings.topic_prefix)
    producer = create_producer(client_config(settings, principal), client_id="test-relay")
    try:
        yield OutboxRelay(
            application, producer, settings.topic(topic.name), batch_size=200,
            sealer=build_sealer(settings, topic.producer, topic.name),
        )
    finally:
        producer.close()


def publish_all(settings: Settings, application: Application, topic: TopicSpec) -> int:
    """Runs the outbox relay until every stored event is acknowledged by the broker (nothing else may write
    to the store meanwhile: it holds that the relay's position is then the store's last event)."""
    published = 0
    with service_relay(settings, application, topic) as relay:
        while batch := relay.run_once():
            published += batch
    assert relay.position() == (relay.app.recorder.max_notification_id() or 0)
    return published


def read_envelopes(
    config: ClientConfig, topic: str, expected: int, timeout_s: float = 30
) -> list[tuple[str, dict[str, Any]]]:
    """(key, envelope) of every message on the topic, in offset order per partition (``config``: who reads)."""
    consumer = KafkaConsumer(**config, enable_auto_commit=False, group_id=None)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    found: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            found.extend((m.key.decode(), json.loads(m.value)) for m in batch)
    consumer.close()
    return found


@cache
def _validator(event_type: str, schema_version: int) -> jsonschema.Draft202012Validator:
    schema = json.loads((GENERATED_DIR / f"{event_type}.v{schema_version}.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def assert_valid_against_json_schema(envelope: dict[str, Any]) -> None:
    _validator(envelope["event_type"], envelope["schema_version"]).validate(envelope)


def assert_chained_in_order(envelopes: list[dict[str, Any]]) -> None:
    """Per stream: positions 1..n in order, each prev_hash the hash before it."""
    from contracts.canonical import GENESIS_HASH, compute_hash

    heads: dict[str, tuple[int, str]] = {}
    for envelope in envelopes:
        position, head = heads.get(envelope["stream_id"], (0, GENESIS_HASH))
        assert envelope["stream_position"] == position + 1, envelope
        assert envelope["prev_hash"] == head, envelope
        assert compute_hash(envelope) == envelope["hash"], envelope
        heads[envelope["stream_id"]] = (position + 1, envelope["hash"])
