"""Toy counters' events, sealed and published on a test's own toy topic: what the consumer kit's tests read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafka import KafkaProducer

from contracts.canonical import canonical_json
from contracts.topics import DEAD_LETTER
from services.common.adapters.kafka import ensure_topics
from services.common.config import Settings
from services.common.domain.chained import recorded_envelope
from services.common.eventstore import build_application
from services.common.signing import seal_envelopes
from tests.support.toy import TOY_TOPIC, Counter, ToyApplication


def publish_counters(
    kafka_config: Mapping[str, Any], settings: Settings, counters: Mapping[str, tuple[int, ...]]
) -> int:
    """Each counter's events (its start, then each amount), sealed with ``settings``' keys, on the toy topic of
    ``settings``' prefix (made with the dead-letter topic if missing); returns how many were published."""
    ensure_topics(kafka_config, [TOY_TOPIC, DEAD_LETTER], settings.topic_prefix)
    app = build_application(ToyApplication, {"PERSISTENCE_MODULE": "eventsourcing.popo"})
    for name, amounts in counters.items():
        counter = Counter.start(name)
        for amount in amounts:
            counter.add(amount)
        app.save(counter)
    total = sum(len(amounts) + 1 for amounts in counters.values())
    recorded = [recorded_envelope(app.mapper, n) for n in app.recorder.select_notifications(start=1, limit=total)]
    seals = seal_envelopes(settings, TOY_TOPIC.name, [e for _k, e in recorded], service=TOY_TOPIC.producer)
    producer = KafkaProducer(**kafka_config, acks="all")  # the toy topic is a test's own: the admin
    for (key, envelope), headers in zip(recorded, seals, strict=True):
        producer.send(settings.topic(TOY_TOPIC.name), key=key.encode(), value=canonical_json(envelope), headers=headers)
    producer.flush()
    producer.close()
    return total
