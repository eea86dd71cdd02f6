"""Where the audit reads history: the three topics from offset 0, and each service's event store.

The topic reader is the auditor's own consumer: it assigns every partition, has no group, commits
nothing, and stops at the end offsets it saw when it started (so a replay is of a fixed history).
The store reader walks the stored notifications in order and rebuilds each envelope exactly as it
was recorded (before any upcasting), with its stored hash.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application
from kafka import KafkaConsumer, TopicPartition

from contracts.topics import PUBLISHED_TOPICS, TopicSpec
from services.common.adapters.kafka import client_config
from services.common.config import Settings
from services.common.definition import SERVICE_NAMES, service_definition
from services.common.domain.chained import recorded_envelope
from services.common.eventstore import build_application
from services.common.relay import relay_name
from services.common.stored_notifications import notifications_after

SERVICE_OF_TOPIC = {spec.name: spec.producer for spec in PUBLISHED_TOPICS}
FETCH_MAX_BYTES = 4 * 1024 * 1024
PARTITION_FETCH_MAX_BYTES = 1024 * 1024
"""The auditor's consumer's fetch sizes: what it holds of the topics at once (bench row 6)."""


def audit_kafka_config(settings: Settings) -> dict[str, Any]:
    """How `ido audit` connects: as ido-audit, which may read the topics and nothing else."""
    from services.common.kafka_credentials import AUDIT

    return client_config(settings, AUDIT)


def audited_topics(settings: Settings) -> list[str]:
    return [settings.topic(spec.name) for spec in PUBLISHED_TOPICS]


def topic_of_service(settings: Settings, service: str) -> str:
    spec: TopicSpec = service_definition(service).topic
    return settings.topic(spec.name)


class TopicReader:
    """Every message of ``topics`` below the end offsets seen at the start, partition by partition."""

    def __init__(
        self,
        kafka_config: Mapping[str, Any],
        topics: Sequence[str],
        *,
        idle_timeout_s: float = 30.0,
        consumer: KafkaConsumer | None = None,
    ):
        self.topics = list(topics)
        self.idle_timeout_s = idle_timeout_s
        self.kafka_config = dict(kafka_config)
        """What a second reader of the same topics connects with (the replay's reading process)."""
        # ``kafka_config``: the broker and the login of ido-audit (``audit_kafka_config``): read, never write.
        self.consumer = consumer or KafkaConsumer(
            **kafka_config,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,
            client_id="ido-audit",
            # Bounded buffers: at 64 / 16 MiB and 20,000 records a poll the replay's peak RSS was 250-290 MiB
            # at 10^5 events, at 16 / 4 MiB 127 MiB (bench/README.md, row 6). These reach their cap at
            # 10^4 events already (~4 MiB a partition), so the peak no longer grows from 10^4 to 10^5.
            fetch_max_bytes=FETCH_MAX_BYTES,
            max_partition_fetch_bytes=PARTITION_FETCH_MAX_BYTES,
        )
        self.partitions: list[TopicPartition] = []
        self.missing_topics: list[str] = []
        for topic in self.topics:
            found = self.consumer.partitions_for_topic(topic)
            if not found:
                self.missing_topics.append(topic)
                continue
            self.partitions.extend(TopicPartition(topic, p) for p in sorted(found))
        self.end_offsets: dict[TopicPartition, int] = (
            dict(self.consumer.end_offsets(self.partitions)) if self.partitions else {}
        )
        self.beginning_offsets: dict[TopicPartition, int] = (
            dict(self.consumer.beginning_offsets(self.partitions)) if self.partitions else {}
        )

    def offsets(self) -> dict[str, dict[str, int]]:
        """{topic: {partition: end offset}} of the history read."""
        found: dict[str, dict[str, int]] = {topic: {} for topic in self.topics if topic not in self.missing_topics}
        for tp, end in sorted(self.end_offsets.items(), key=lambda item: (item[0].topic, item[0].partition)):
            found[tp.topic][str(tp.partition)] = end
        return found

    def batches(self, stop_at: dict[TopicPartition, int] | None = None) -> Iterator[tuple[TopicPartition, list[Any]]]:
        """(partition, records) until every partition reached its end offset (or ``stop_at``)."""
        ends = stop_at if stop_at is not None else self.end_offsets
        wanted = [tp for tp in self.partitions if ends.get(tp, 0) > 0]
        if not wanted:
            return
        self.consumer.assign(wanted)
        for tp in wanted:
            self.consumer.seek(tp, 0)
        open_ = set(wanted)
        last_progress = time.monotonic()
        while open_:
            polled = self.consumer.poll(timeout_ms=500, max_records=2_000)
            if polled:
                last_progress = time.monotonic()
            for tp, records in polled.items():
                if tp not in open_:
                    continue
                end = ends[tp]
                if records[-1].offset >= end:
                    records = [r for r in records if r.offset < end]
                if records:
                    yield tp, records
                if self.consumer.position(tp) >= end:
                    open_.discard(tp)
                    self.consumer.pause(tp)
            if open_ and time.monotonic() - last_progress > self.idle_timeout_s:
                names = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(open_))
                raise TimeoutError(f"no messages for {self.idle_timeout_s:.0f} s before the end offsets of {names}")

    def close(self) -> None:
        self.consumer.close()


def open_store(settings: Settings, service: str) -> Application:
    """The service's application on its configured event store, as the service builds it (read only:
    without the service's record key, which the auditor neither needs nor should hold)."""
    env = {k: v for k, v in settings.eventsourcing_env(service).items() if k != "IDO_RECORD_KEY_FILE"}
    return build_application(service_definition(service).application_class, env)


@dataclass(frozen=True)
class StoredEvent:
    notification_id: int
    key: str
    envelope: dict[str, Any]


def stored_events(application: Application, page: int = 1000) -> Iterator[StoredEvent]:
    """Every stored event in notification order, as recorded (``recorded_envelope``)."""
    for notification in notifications_after(application.recorder, page=page):
        key, envelope = recorded_envelope(application.mapper, notification)
        yield StoredEvent(notification.id, key, envelope)


def relay_position(application: Application, topic: str) -> int:
    """The last notification id the outbox relay had the broker acknowledge for ``topic``."""
    return application.factory.tracking_recorder().max_tracking_id(relay_name(topic)) or 0


def services() -> tuple[str, ...]:
    return SERVICE_NAMES
