"""Where the test servers are, read from the environment `make test` sets."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace
from typing import Any

import pytest

from services.common.adapters.kafka import client_config
from services.common.config import MIN_INSYNC_REPLICAS, REPLICATION_FACTOR, Settings, load_settings
from services.common.kafka_credentials import ADMIN


@dataclass(frozen=True)
class KafkaInfo:
    """A broker (or a cluster: ``bootstrap_servers`` a comma-separated list) with SASL/SCRAM and ACLs,
    the directory of its principals' password files, and the replication its topics get (1/1 on the
    single node, 3/2 on the three-broker cluster: docs/operations.md)."""

    bootstrap_servers: str
    credentials_dir: str
    replication_factor: int = 1
    min_insync_replicas: int = 1

    def settings_env(self) -> dict[str, str]:
        """The settings that point a process at this broker with these credentials and this replication:
        every process a test starts on a cluster creates and checks its topics with the cluster's copies."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "IDO_KAFKA_CREDENTIALS_DIR": self.credentials_dir,
            REPLICATION_FACTOR: str(self.replication_factor),
            MIN_INSYNC_REPLICAS: str(self.min_insync_replicas),
        }

    @property
    def on_cluster(self) -> bool:
        return self.replication_factor > 1

    def settings(self, topic_prefix: str = "") -> Settings:
        return load_settings({**self.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix})

    def client(self, principal: str = ADMIN) -> dict[str, Any]:
        """kafka-python keyword arguments of ``principal`` (default: the admin, for a test's own set-up:
        writing forged or broken messages, reading a topic back, creating test-only topics)."""
        return client_config(self.settings(), principal)


@dataclass(frozen=True)
class PostgresInfo:
    host: str
    port: int
    user: str
    password: str
    dbname: str

    def dsn(self, dbname: str | None = None) -> str:
        database = dbname or self.dbname
        return f"host={self.host} port={self.port} user={self.user} password={self.password} dbname={database}"

    def with_dbname(self, dbname: str) -> PostgresInfo:
        return replace(self, dbname=dbname)

    def settings_env(self) -> dict[str, str]:
        return {
            "IDO_EVENT_STORE": "postgres",
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_DBNAME": self.dbname,
        }


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def bootstrap_addresses(bootstrap: str) -> list[tuple[str, int]]:
    """``host:port[,host:port...]`` (one broker, or the three of the cluster) as (host, port) pairs;
    ValueError names the part that is not ``host:port``."""
    addresses: list[tuple[str, int]] = []
    for part in bootstrap.split(","):
        host, colon, port = part.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"not host:port: {part.strip()!r} in {bootstrap!r}")
        addresses.append((host, int(port)))
    return addresses


def kafka_info() -> KafkaInfo:
    """The session's broker: the single node of `make test`, or the three-broker cluster of `make resilience`
    (scripts/test-servers.sh then also exports TEST_KAFKA_REPLICATION_FACTOR=3 and
    TEST_KAFKA_MIN_INSYNC_REPLICAS=2). Every address must answer: a cluster with a node missing at the
    start would not be the cluster the tests claim to run on."""
    bootstrap = os.environ.get("TEST_KAFKA_BOOTSTRAP")
    if not bootstrap:
        pytest.fail("Kafka: TEST_KAFKA_BOOTSTRAP is not set; run the suite with `make test`, which starts the broker")
    credentials = os.environ.get("TEST_KAFKA_CREDENTIALS_DIR")
    if not credentials:
        pytest.fail("Kafka: TEST_KAFKA_CREDENTIALS_DIR is not set; run the suite with `make test`, which sets it")
    try:
        addresses = bootstrap_addresses(bootstrap)
        factor = int(os.environ.get("TEST_KAFKA_REPLICATION_FACTOR") or 1)
        min_insync = int(os.environ.get("TEST_KAFKA_MIN_INSYNC_REPLICAS") or 1)
    except ValueError as error:
        pytest.fail(f"Kafka: TEST_KAFKA_BOOTSTRAP or the TEST_KAFKA_* replication settings are wrong: {error}")
    silent = [f"{host}:{port}" for host, port in addresses if not _reachable(host, port)]
    if silent:
        pytest.fail(f"Kafka: no broker answers at {', '.join(silent)} of {bootstrap} (see the broker logs under var/)")
    return KafkaInfo(bootstrap, credentials, factor, min_insync)


def postgres_info() -> PostgresInfo:
    port = os.environ.get("TEST_POSTGRES_PORT")
    if not port:
        pytest.fail("PostgreSQL: TEST_POSTGRES_PORT is not set; run the suite with `make test`, which starts it")
    info = PostgresInfo(
        host=os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1"),
        port=int(port),
        user=os.environ.get("TEST_POSTGRES_USER", "ido"),
        password=os.environ.get("TEST_POSTGRES_PASSWORD", "ido"),
        dbname=os.environ.get("TEST_POSTGRES_DBNAME", "ido"),
    )
    if not _reachable(info.host, info.port):
        pytest.fail(f"PostgreSQL: no server answers at {info.host}:{info.port}")
    return info
