"""Where the test servers are, read from the environment `make test` sets."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace
from typing import Any

import pytest

from services.common.adapters.kafka import client_config
from services.common.config import Settings, load_settings
from services.common.kafka_credentials import ADMIN


@dataclass(frozen=True)
class KafkaInfo:
    """A broker with SASL/SCRAM and ACLs, and the directory of its principals' password files."""

    bootstrap_servers: str
    credentials_dir: str

    def settings_env(self) -> dict[str, str]:
        """The settings that point a process at this broker with these credentials."""
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers, "IDO_KAFKA_CREDENTIALS_DIR": self.credentials_dir}

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


def kafka_info() -> KafkaInfo:
    bootstrap = os.environ.get("TEST_KAFKA_BOOTSTRAP")
    if not bootstrap:
        pytest.fail("Kafka: TEST_KAFKA_BOOTSTRAP is not set; run the suite with `make test`, which starts the broker")
    credentials = os.environ.get("TEST_KAFKA_CREDENTIALS_DIR")
    if not credentials:
        pytest.fail("Kafka: TEST_KAFKA_CREDENTIALS_DIR is not set; run the suite with `make test`, which sets it")
    host, _, port = bootstrap.partition(":")
    if not _reachable(host, int(port)):
        pytest.fail(f"Kafka: no broker answers at {bootstrap} (see var/test/kafka/kafka.log)")
    return KafkaInfo(bootstrap, credentials)


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
