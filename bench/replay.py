"""Row 4: ``replay_to_balances`` runs the auditor's replay (``services.audit.replay.replay_topics``);
``raw_consume`` is the reference: the same topics read to their end, the bytes only counted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from services.audit.replay import replay_topics
from services.common.collector import settle
from services.common.config import Settings

REPLAY_IMPLEMENTATION = f"{replay_topics.__module__}.{replay_topics.__qualname__}"


@dataclass
class ReplayResult:
    events: int
    balances: int
    implementation: str
    chain_breaks: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


def _consumer(kafka_config: Mapping[str, Any], topics: Sequence[str]) -> tuple[KafkaConsumer, list[TopicPartition]]:
    consumer = KafkaConsumer(
        **kafka_config, group_id=None, enable_auto_commit=False, client_id="bench-replay",
        max_poll_records=2000, fetch_max_bytes=50 * 1024 * 1024, max_partition_fetch_bytes=10 * 1024 * 1024,
    )
    partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    return consumer, partitions


def read_all(kafka_config: Mapping[str, Any], topics: Sequence[str]) -> Iterator[Any]:
    """Every message of the topics, partition by partition in offset order, up to their end now."""
    consumer, partitions = _consumer(kafka_config, topics)
    try:
        end = consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            for tp, batch in consumer.poll(timeout_ms=1000).items():
                yield from batch
                if batch[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
    finally:
        consumer.close()


def raw_consume(kafka_config: Mapping[str, Any], topics: Sequence[str]) -> int:
    """The reference: read the same topics to their end, touching only the bytes."""
    count = 0
    size = 0
    for message in read_all(kafka_config, topics):
        count += 1
        size += len(message.value)
    return count


def replay_to_balances(settings: Settings, topics: Sequence[str], *, verify_provenance: bool = True) -> ReplayResult:
    """Row 4's project path: the auditor's replay (``ido audit replay``) to every balance
    (``verify_provenance=False``: without the seal check, the "provenance off" comparison)."""
    settle()  # as `ido audit replay` does before it reads (services/audit/cli.py)
    replay = replay_topics(settings, topics=list(topics), verify_provenance=verify_provenance)
    stats = replay.stats
    return ReplayResult(
        events=int(stats.messages),
        balances=len(replay.municipality_years()),
        implementation=REPLAY_IMPLEMENTATION,
        chain_breaks=int(getattr(stats, "invalid", 0)),
        detail={"applied": stats.applied, "duplicates": stats.duplicates, "refused": stats.refused},
    )
