"""Envelopes of the three topics for projection tests, built with the real contracts."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from kafka import KafkaProducer

from contracts.canonical import GENESIS_HASH, canonical_json
from contracts.envelope import validate_envelope
from contracts.registry import contract_for
from contracts.topics import BRIDGE, EXPENDITURES, GRANTS
from services.common.adapters.kafka import client_config
from services.common.config import Settings
from services.common.domain.chained import build_envelope
from services.common.kafka_credentials import ADMIN
from services.common.signing import seal_envelopes

PRODUCERS = {GRANTS.name: "payments", BRIDGE.name: "bridge", EXPENDITURES.name: "ledger"}


class Streams:
    """Builds valid, hash-chained envelopes per stream, and sends them to the prefixed topics."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.heads: dict[str, tuple[int, str]] = defaultdict(lambda: (0, GENESIS_HASH))
        self.sent: list[tuple[str, bytes, dict[str, Any]]] = []

    def event(self, event_type: str, stream_id: str, key: str, recorded_at: str, **payload: Any) -> dict[str, Any]:
        topic = contract_for(event_type, 1).topic
        position, prev_hash = self.heads[stream_id]
        envelope = build_envelope(
            event_id=str(uuid.uuid4()),
            event_type=event_type,
            schema_version=1,
            stream_id=stream_id,
            stream_position=position + 1,
            occurred_at=recorded_at,
            recorded_at=recorded_at,
            producer=PRODUCERS[topic],
            payload=payload,
            prev_hash=prev_hash,
        )
        validate_envelope(envelope)
        self.heads[stream_id] = (position + 1, envelope["hash"])
        self.sent.append((self.prefix + topic, key.encode(), envelope))
        return envelope

    def send(self, settings: Settings, envelopes: list[tuple[str, bytes, dict[str, Any]]] | None = None) -> None:
        """Produces the envelopes (all sent so far by default), sealed as their services' relays would
        with the keys of ``settings`` (a re-send is sealed again, as a relay re-sending after a crash).
        Written as the admin (a test's set-up: it writes every topic)."""
        messages = envelopes if envelopes is not None else self.sent
        headers: dict[int, list[tuple[str, bytes]]] = {}
        for topic in {t for t, _k, _e in messages}:
            indexes = [i for i, (t, _k, _e) in enumerate(messages) if t == topic]
            sealed = seal_envelopes(settings, topic.removeprefix(self.prefix), [messages[i][2] for i in indexes])
            headers.update(zip(indexes, sealed, strict=True))
        producer = KafkaProducer(**client_config(settings, ADMIN), acks="all", enable_idempotence=True)
        for index, (topic, key, envelope) in enumerate(messages):
            producer.send(topic, key=key, value=canonical_json(envelope), headers=headers[index])
        producer.flush()
        producer.close()


def at(day: str, time: str = "12:00:00") -> str:
    return f"{day}T{time}.000000Z"
