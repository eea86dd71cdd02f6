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
from services.common.config import REPLICATION_FACTOR, Settings, TopicReplication
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


SINGLE_NODE = TopicReplication()
"""One copy (the single local broker of scripts/kafka.sh): the default of test and benchmark set-ups only."""


class TopicReplicationError(RuntimeError):
    """A topic exists with fewer copies than ``IDO_KAFKA_REPLICATION_FACTOR`` asks for."""


def ensure_topics(config: ClientConfig, specs: Iterable[TopicSpec], prefix: str = "",
                  replication: TopicReplication = SINGLE_NODE) -> None:
    """Creates the missing topics; ``config`` must be the admin's (only it may create topics).
    ``replication`` is ``settings.kafka_topic_replication`` wherever a process of ours creates topics;
    the default (1 copy) only serves test and benchmark set-ups on the single local node."""
    admin = AdminClient(**config, client_id="ido-admin", request_timeout_ms=30000)
    try:
        create_topics(admin, specs, prefix, replication)
    finally:
        admin.close()


def create_topics(admin: KafkaAdminClient, specs: Iterable[TopicSpec], prefix: str = "",
                  replication: TopicReplication = SINGLE_NODE) -> None:
    """The missing topics, each with ``replication.factor`` copies and its min.insync.replicas; an existing
    topic with fewer copies is refused (TopicReplicationError), never silently kept less durable than asked."""
    specs = list(specs)
    existing = set(admin.list_topics())
    wanted = [
        NewTopic(
            name=f"{prefix}{spec.name}",
            num_partitions=spec.partitions,
            replication_factor=replication.factor,
            topic_configs={**spec.config, "min.insync.replicas": str(replication.min_insync)},
        )
        for spec in specs
        if f"{prefix}{spec.name}" not in existing
    ]
    _check_replication(admin, [f"{prefix}{spec.name}" for spec in specs if f"{prefix}{spec.name}" in existing],
                       replication)
    if wanted:
        try:
            admin.create_topics(wanted)
        except TopicAlreadyExistsError:
            pass  # another process created it between our list and create


def _check_replication(admin: KafkaAdminClient, names: list[str], replication: TopicReplication) -> None:
    if not names or replication.factor == 1:
        return  # every topic has at least one copy: nothing to ask the broker
    for topic in admin.describe_topics(names):
        copies = min((len(partition["replica_nodes"]) for partition in topic["partitions"]), default=0)
        if copies < replication.factor:
            raise TopicReplicationError(
                f"topic {topic['name']} exists with {copies} copies of a partition, {REPLICATION_FACTOR} asks for "
                f"{replication.factor}: reassign its partitions (kafka-reassign-partitions) before provisioning"
            )


class AdminClient(KafkaAdminClient):
    """A ``KafkaAdminClient`` that stops its IO thread when it cannot start.

    kafka-python 3.x starts the client's IO thread before it bootstraps, and a bootstrap that fails (the
    broker away) raises from the constructor with that thread still running: the caller has no object to
    close. A probe that retries while the broker is away (``readiness.KafkaProbe``) left a thread and its
    sockets behind at every try (``make soak``: the services' workers grew threads after two brokers were
    lost). Here the half-made client is closed before the error goes on."""

    def __init__(self, **configs: Any):
        try:
            super().__init__(**configs)
        except Exception:
            net = getattr(self, "_net", None)  # set before the bootstrap; no public handle on a failed start
            client = getattr(self, "_client", None)
            try:
                if client is not None:
                    client.close()
            finally:
                if net is not None:
                    net.stop(timeout_ms=1000)
            raise


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
