"""kafka-python set-up: who connects (``client_config``), topics created explicitly, producers idempotent
with acks=all.

Every KafkaProducer, KafkaConsumer and KafkaAdminClient of the services, the benchmarks, the tests and
docs/examples is built from ``client_config(settings, principal)``: the broker's address and the SASL
login of one principal (services/common/kafka_credentials.py). The password is read from its file at
each call, so a client built after a rotation (`ido kafka rotate`) logs in with the new one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from contracts.topics import TopicSpec
from services.common.config import Settings
from services.common.kafka_credentials import read_password

ClientConfig = Mapping[str, Any]
"""Keyword arguments of a kafka-python client: bootstrap_servers and the security settings."""


def client_config(settings: Settings, principal: str) -> dict[str, Any]:
    """kafka-python keyword arguments to connect as ``principal`` (its password file is read now)."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol == "PLAINTEXT":
        return config  # a broker without authentication (no ACLs either): the principal is not used
    config.update(
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_plain_username=principal,
        sasl_plain_password=read_password(settings.kafka_credentials_dir, principal),
    )
    if settings.kafka_security_protocol == "SASL_SSL" and settings.kafka_ssl_cafile is not None:
        config["ssl_cafile"] = str(settings.kafka_ssl_cafile)
    return config


def ensure_topics(config: ClientConfig, specs: Iterable[TopicSpec], prefix: str = "") -> None:
    """Creates the missing topics; ``config`` must be the admin's (only it may create topics)."""
    admin = KafkaAdminClient(**config, client_id="ido-admin", request_timeout_ms=30000)
    try:
        create_topics(admin, specs, prefix)
    finally:
        admin.close()


def create_topics(admin: KafkaAdminClient, specs: Iterable[TopicSpec], prefix: str = "") -> None:
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


def create_producer(config: ClientConfig, client_id: str) -> KafkaProducer:
    return KafkaProducer(
        **config,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        # 256 KiB per partition batch (kafka-python's default is 16 KiB): with its seal headers a message is
        # ~1.4 KB, and 11 messages a request made the relay wait on round trips (bench row 2).
        batch_size=256 * 1024,
        max_in_flight_requests_per_connection=5,
        request_timeout_ms=15000,
        delivery_timeout_ms=30000,
    )
