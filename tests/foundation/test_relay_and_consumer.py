"""The outbox relay and the consumer kit against the real broker, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import select, text

from contracts.canonical import canonical_json
from contracts.topics import DEAD_LETTER
from services.common.adapters.kafka import ClientConfig, ensure_topics
from services.common.adapters.sql import create_sql_engine
from services.common.config import Settings, load_settings
from services.common.consumer import ProjectionRunner, applied_events
from services.common.domain.chained import envelope_of
from services.common.eventstore import build_application
from services.common.signing import seal_envelopes
from tests.support.infra import KafkaInfo
from tests.support.toy import TOY_TOPIC, Counter, CounterProjection, ToyApplication, toy_provenance

REPO = Path(__file__).resolve().parents[2]
STREAMS = 10
EVENTS_PER_STREAM = 100  # 1 started + 99 added: 1,000 events in all


@pytest.fixture
def env(store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str) -> dict[str, str]:
    return {**store_env, **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix}


def save_counters(settings: Settings) -> ToyApplication:
    app = build_application(ToyApplication, settings.eventsourcing_env("toy"))
    counters = [Counter.start(f"c{i:02d}") for i in range(STREAMS)]
    for step in range(EVENTS_PER_STREAM - 1):
        for counter in counters:
            counter.add(step + 1)
        if step % 20 == 19:
            app.save(*counters)
    app.save(*counters)
    assert app.recorder.max_notification_id() is not None
    return app


def start_relay(env: dict[str, str], batch_size: int) -> subprocess.Popen[bytes]:
    process_env = {**os.environ, **env, "IDO_RELAY_BATCH_SIZE": str(batch_size), "IDO_RELAY_POLL_INTERVAL_MS": "20"}
    return subprocess.Popen(
        [
            sys.executable, "-m", "services.common.entrypoints.relay", "toy",
            "--application", "tests.support.toy:ToyApplication", "--topic", TOY_TOPIC.name,
            "--principal", "ido-admin",  # a test-only topic: no relay principal has ACLs on it
        ],
        cwd=REPO,
        env=process_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def read_topic(kafka_config: ClientConfig, topic: str, expected_at_least: int, timeout_s: float = 30) -> list[Any]:
    consumer = KafkaConsumer(**kafka_config, enable_auto_commit=False, group_id=None)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            messages.extend(batch)
        end = consumer.end_offsets(partitions)
        if len(messages) >= expected_at_least and all(consumer.position(tp) >= end[tp] for tp in partitions):
            break
    consumer.close()
    return messages




def rewind_relay_position(settings: Settings, to_notification_id: int) -> None:
    """Simulates a relay that died after the broker acknowledged but before it recorded its position."""
    if settings.event_store == "sqlite":
        url = f"sqlite:///{settings.data_dir / 'toy-events.sqlite'}"
    else:
        assert settings.postgres is not None
        url = settings.postgres.sqlalchemy_url
    engine = create_sql_engine(url)
    with engine.begin() as connection:
        tables = [
            name
            for name in _table_names(connection, settings.event_store)
            if name.endswith("tracking")
        ]
        assert tables, "no tracking table found"
        for table in tables:
            connection.execute(
                text(f"UPDATE {table} SET notification_id = :id WHERE application_name LIKE 'relay:%'"),
                {"id": to_notification_id},
            )
    engine.dispose()


def _table_names(connection: Any, store: str) -> list[str]:
    if store == "sqlite":
        return [row[0] for row in connection.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))]
    return [row[0] for row in connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public'"))]


def test_relay_killed_midway_publishes_every_event_in_order_and_consumer_applies_each_once(
    env: dict[str, str], kafka: KafkaInfo, tmp_path: Path
) -> None:
    settings = load_settings(env)
    topic = settings.topic(TOY_TOPIC.name)
    ensure_topics(kafka.client(), [TOY_TOPIC], settings.topic_prefix)
    app = save_counters(settings)
    stored = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(start=1, limit=10_000)]
    assert len(stored) == STREAMS * EVENTS_PER_STREAM
    tracking = app.factory.tracking_recorder()
    relay_name = f"relay:{topic}"

    # Pages of one event: each waits for the broker's acknowledgement, so the relay needs about a second
    # for the 1,000 and is still midway when it has passed 300 (with pages of 25 it once finished between
    # two polls of the tracking table).
    relay = start_relay(env, batch_size=1)
    wait_for(lambda: (tracking.max_tracking_id(relay_name) or 0) >= 300, 60, "the relay to pass 300 events")
    relay.send_signal(signal.SIGKILL)
    relay.wait(timeout=10)
    position_at_kill = tracking.max_tracking_id(relay_name) or 0
    assert position_at_kill < stored[-1].originator_version * STREAMS, "the relay finished before it was killed"

    rewind_relay_position(settings, position_at_kill - 100)
    relay = start_relay(env, batch_size=25)
    last_id = app.recorder.max_notification_id()
    wait_for(lambda: tracking.max_tracking_id(relay_name) == last_id, 60, "the restarted relay to catch up")
    relay.send_signal(signal.SIGTERM)
    relay.wait(timeout=10)

    messages = read_topic(kafka.client(), topic, expected_at_least=len(stored))
    envelopes = [json.loads(m.value) for m in messages]
    assert len(envelopes) > len(stored), "the rewind should have made the relay send some events twice"
    assert {e["event_id"] for e in envelopes} == {e.event_id for e in stored}, "an event is missing on the topic"

    # Per key, the first time each event appears is exactly the stream's order 1..n.
    first_seen: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for message, envelope in zip(messages, envelopes, strict=True):
        assert message.key.decode() == envelope["stream_id"].removeprefix("counter-")
        if envelope["event_id"] not in seen:
            seen.add(envelope["event_id"])
            first_seen[envelope["stream_id"]].append(envelope["stream_position"])
    assert len(first_seen) == STREAMS
    for positions in first_seen.values():
        assert positions == list(range(1, EVENTS_PER_STREAM + 1))
    # What went out is byte for byte the envelope rebuilt from the store.
    by_id = {e.event_id: e for e in stored}
    for message in messages[:50]:
        assert message.value == canonical_json(envelope_of(by_id[json.loads(message.value)["event_id"]]))

    engine = create_sql_engine(settings.view_db_url if settings.event_store == "postgres" else f"sqlite:///{tmp_path}/view.sqlite")
    projection = CounterProjection()
    runner = ProjectionRunner(
        projection=projection,
        engine=engine,
        topics=[topic],
        kafka_config=kafka.client(),  # the toy topic is a test's own: no principal has ACLs on it
        dead_letter_topic=settings.topic(DEAD_LETTER.name),
        group_id=f"{settings.topic_prefix}counters",
        provenance=toy_provenance(settings),
    )
    try:
        deadline = time.monotonic() + 60
        while runner.stats.applied < len(stored) and time.monotonic() < deadline:
            runner.run_once(timeout_ms=500)
    finally:
        runner.close()
    assert runner.stats.applied == len(stored)
    assert runner.stats.duplicates == len(envelopes) - len(stored)
    with engine.connect() as connection:
        rows = connection.execute(select(projection.table)).all()
        assert len(rows) == STREAMS
        expected_total = sum(range(1, EVENTS_PER_STREAM))
        for row in rows:
            assert (row.events, row.total_cents, row.last_position) == (EVENTS_PER_STREAM, expected_total, 100)
        assert connection.execute(select(applied_events)).all().__len__() == len(stored)


def test_poison_messages_go_to_the_dead_letter_topic_and_later_events_still_apply(
    env: dict[str, str], kafka: KafkaInfo, tmp_path: Path
) -> None:
    settings = load_settings(env)
    topic = settings.topic(TOY_TOPIC.name)
    dead_letter_topic = settings.topic(DEAD_LETTER.name)
    ensure_topics(kafka.client(), [TOY_TOPIC, DEAD_LETTER], settings.topic_prefix)
    app = build_application(ToyApplication, settings.eventsourcing_env("toy"))
    counter = Counter.start("poison")
    counter.add(5)
    counter.add(7)
    app.save(counter)
    good = [envelope_of(app.mapper.to_domain_event(n)) for n in app.recorder.select_notifications(start=1, limit=10)]
    forged = dict(good[1], payload={"amount_cents": 5000})  # changed after hashing
    wrong_schema = dict(good[1], payload={"amount_cents": "7.00"})
    unknown_type = dict(good[1], event_type="NoSuchEvent")
    # an event type too long to be a file name: the fast check once raised OSError on it, a poison message
    long_type = dict(good[1], event_type="X" * 300)

    seals = seal_envelopes(settings, TOY_TOPIC.name, good, service=TOY_TOPIC.producer)
    producer = KafkaProducer(**kafka.client(), acks="all")
    key = b"poison"
    producer.send(topic, key=key, value=canonical_json(good[0]), headers=seals[0])
    producer.send(topic, key=key, value=b"\xff not json")
    producer.send(topic, key=key, value=canonical_json(wrong_schema))
    producer.send(topic, key=key, value=canonical_json(unknown_type))
    producer.send(topic, key=key, value=canonical_json(long_type))
    producer.send(topic, key=key, value=canonical_json(forged), headers=seals[1])
    producer.send(topic, key=key, value=canonical_json(good[1]), headers=seals[1])
    producer.send(topic, key=key, value=canonical_json(good[2]), headers=seals[2])
    producer.flush()
    producer.close()

    engine = create_sql_engine(f"sqlite:///{tmp_path}/view.sqlite")
    projection = CounterProjection()
    runner = ProjectionRunner(
        projection=projection,
        engine=engine,
        topics=[topic],
        kafka_config=kafka.client(),  # the toy topic is a test's own: no principal has ACLs on it
        dead_letter_topic=dead_letter_topic,
        group_id=f"{settings.topic_prefix}poison",
        provenance=toy_provenance(settings),
    )
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 30
        while runner.stats.applied < 3 and time.monotonic() < deadline:
            runner.run_once(timeout_ms=300)
    finally:
        stop.set()
        runner.close()
    assert runner.stats.applied == 3
    assert runner.stats.dead_lettered == 5
    with engine.connect() as connection:
        row = connection.execute(select(projection.table)).one()
    assert (row.events, row.total_cents) == (3, 12)

    dead = read_topic(kafka.client(), dead_letter_topic, expected_at_least=5)
    reasons = [dict(m.headers)["reason"].decode() for m in dead]
    assert [m.value for m in dead][0] == b"\xff not json"
    assert reasons[0].startswith("value: not UTF-8 JSON")
    assert reasons[1].startswith("payload.amount_cents")
    assert reasons[2].startswith("event_type: unknown type 'NoSuchEvent'")
    assert reasons[3] == "envelope: event_type: Length must be between 1 and 100."
    assert reasons[4] == "hash: does not match the envelope's content"
    assert all(dict(m.headers)["original_topic"].decode() == topic for m in dead)
