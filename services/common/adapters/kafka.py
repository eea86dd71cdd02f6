"""kafka-python set-up: topics created explicitly, producers idempotent with acks=all."""

from __future__ import annotations

from collections.abc import Iterable

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from contracts.topics import TopicSpec


def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec], prefix: str = "") -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="ido-admin", request_timeout_ms=30000)
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                name=f"{prefix}{spec.name}",
                num_partitions=spec.partitions,
                replication_factor=1,
                topic_configs=spec.config,
            )
            for spec in specs
            if f"{prefix}{spec.name}" not in existing
        ]
        if wanted:
            try:
                admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another process created it between our list and create
    finally:
        admin.close()


def create_producer(bootstrap_servers: str, client_id: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_in_flight_requests_per_connection=5,
        request_timeout_ms=15000,
        delivery_timeout_ms=30000,
    )
