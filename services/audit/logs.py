"""The logs the checkpoints sign, read as leaves: each event store's notifications, each topic partition.

* ``store:<service>``: one leaf per stored event, in notification-id order; its input is the 32
  bytes of the event's stored ``hash`` (which covers the whole envelope, ``recorded_at`` and
  position included). A stored event whose content no longer gives that hash is marked.
* ``topic:<topic>/<partition>`` (the topic's name without ``IDO_TOPIC_PREFIX``): one leaf per
  message in offset order; its input is ``message_leaf_input(key, value)``, so key and value are
  both covered.

Leaves are produced one at a time: nothing here holds the history in memory.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kafka import TopicPartition

from contracts.canonical import compute_hash
from contracts.ido_verify import message_leaf_input
from contracts.topics import PUBLISHED_TOPICS
from services.audit.sources import TopicReader, audit_kafka_config, open_store
from services.common.config import Settings
from services.common.domain.chained import recorded_envelope
from services.common.stored_notifications import notifications_after

STORE = "store:"
TOPIC = "topic:"


@dataclass(frozen=True, slots=True)
class Leaf:
    input: bytes
    event_id: str | None
    source: int
    """The notification id (store) or the offset (topic)."""
    recorded_at: str | None = None
    content_problem: str | None = None


def store_log(service: str) -> str:
    return f"{STORE}{service}"


def topic_log(topic: str, partition: int) -> str:
    return f"{TOPIC}{topic}/{partition}"


def where(log: str, source: int) -> str:
    """``notification N`` in a store log, ``partition P offset O`` in a topic log."""
    if log.startswith(TOPIC):
        return f"partition {log.rsplit('/', 1)[1]} offset {source}"
    return f"notification {source}"


def store_leaves(settings: Settings, service: str, page: int = 1000) -> Iterator[Leaf]:
    """Every stored event of the service in notification order, as a leaf."""
    application = open_store(settings, service)
    try:
        for notification in notifications_after(application.recorder, page=page):
            yield _store_leaf(application, notification)
    finally:
        application.close()


def _store_leaf(application: Any, notification: Any) -> Leaf:
    try:
        _key, envelope = recorded_envelope(application.mapper, notification)
        stored = envelope["hash"]
        leaf = bytes.fromhex(stored)
        if len(leaf) != 32:
            raise ValueError("hash of the wrong length")
    except Exception as error:  # noqa: BLE001 - a garbled row is a finding, not a crash
        return Leaf(
            hashlib.sha256(bytes(notification.state)).digest(), None, notification.id,
            content_problem=f"the stored event cannot be read ({type(error).__name__}: {error})",
        )
    problem = None if compute_hash(envelope) == stored else "the event's content does not give its stored hash"
    return Leaf(leaf, envelope.get("event_id"), notification.id, envelope.get("recorded_at"), problem)


def message_leaf(offset: int, key: bytes | None, value: bytes | None) -> Leaf:
    try:
        event_id = json.loads(value)["event_id"] if value is not None else None
        if not isinstance(event_id, str):
            event_id = None
    except (ValueError, KeyError, TypeError):
        event_id = None
    return Leaf(message_leaf_input(key, value), event_id, offset)


def logical_topics() -> list[str]:
    return [spec.name for spec in PUBLISHED_TOPICS]


class TopicLogs:
    """The partitions of the published topics up to the end offsets seen when opened, as logs."""

    def __init__(self, settings: Settings, topics: list[str] | None = None):
        self.logical = {settings.topic(name): name for name in (topics or logical_topics())}
        self.reader = TopicReader(audit_kafka_config(settings), list(self.logical))
        self.names: dict[TopicPartition, str] = {
            tp: topic_log(self.logical[tp.topic], tp.partition) for tp in self.reader.partitions
        }
        self.beginnings = {self.names[tp]: offset for tp, offset in self.reader.beginning_offsets.items()}

    def leaves(self) -> Iterator[tuple[str, Leaf]]:
        """(log, leaf) of every message, each partition's in offset order (partitions interleave)."""
        for tp, records in self.reader.batches():
            name = self.names[tp]
            for record in records:
                yield name, message_leaf(record.offset, record.key, record.value)

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> TopicLogs:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def fetch_message(settings: Settings, log: str, offset: int, timeout_s: float = 10) -> tuple[Any, Any] | None:
    """(key, value) of one message of a topic log, None when it is not there."""
    logical, partition = log[len(TOPIC):].rsplit("/", 1)
    reader = TopicReader(audit_kafka_config(settings), [settings.topic(logical)], idle_timeout_s=timeout_s)
    try:
        tp = TopicPartition(settings.topic(logical), int(partition))
        if reader.end_offsets.get(tp, 0) <= offset:
            return None
        consumer = reader.consumer
        consumer.assign([tp])
        consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=500, max_records=1).get(tp, []):
                return (record.key, record.value) if record.offset == offset else None
        return None
    finally:
        reader.close()
