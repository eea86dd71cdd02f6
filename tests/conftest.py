"""Fixtures for the real infrastructure: the Kafka broker and PostgreSQL server that `make test` starts.

Integration tests never skip: when a server is not there, they fail saying which and why.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, settings
from kafka import KafkaAdminClient

from services.common.config import Settings, load_settings
from services.common.kafka_provisioning import provision_prefix, provision_users
from services.common.logging_setup import QUIETED_LOGGERS, SERVICE
from tests.support.infra import KafkaInfo, PostgresInfo, kafka_info, postgres_info
from tests.support.tokens import TokenFactory

# `make mutation` (scripts/mutation.sh) sets IDO_HYPOTHESIS_PROFILE=mutation: a mutant's verdict needs the first
# failing example, not its shrunk form, and the run's tracing on a busy machine must not fail a property test as
# "too slow" (that would count as a kill); no example database, so no mutant's failure is replayed on another.
settings.register_profile(
    "mutation",
    suppress_health_check=list(HealthCheck),
    deadline=None,
    phases=(Phase.explicit, Phase.generate),
    database=None,
)
# Every run: no deadline. A property test asserts behaviour, not speed (speed lives in `make bench`); under load
# an example of the canonical encoder's test took 287 ms against hypothesis's default 200 and failed the suite.
settings.register_profile("suite", deadline=None)
settings.load_profile(os.environ.get("IDO_HYPOTHESIS_PROFILE") or "suite")


def _not_pytests(handlers: list[logging.Handler]) -> list[logging.Handler]:
    """The handlers that are not pytest's own (it adds and removes its capture around each phase of a test)."""
    return [handler for handler in handlers if not type(handler).__module__.startswith("_pytest")]


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """Each test leaves the logging set-up as it found it. A command run in place (``cli.main``) installs its
    handler on the root logger, bound to the ``sys.stderr`` of that moment (the test's capture, closed after
    it): left there, every later line of that worker failed to write and printed a traceback instead."""
    root = logging.getLogger()
    handlers, level, srcfile = _not_pytests(root.handlers), root.level, logging._srcfile  # type: ignore[attr-defined]
    quieted = {name: logging.getLogger(name).level for name in QUIETED_LOGGERS}
    service = SERVICE.get()
    yield
    for handler in _not_pytests(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    logging._srcfile = srcfile  # type: ignore[attr-defined]
    for name, quiet_level in quieted.items():
        logging.getLogger(name).setLevel(quiet_level)
    SERVICE.set(service)


@pytest.fixture(scope="session")
def kafka() -> KafkaInfo:
    """The test broker, with a SCRAM user for every client principal (made once per session)."""
    info = kafka_info()
    provision_users(info.settings())
    return info


@pytest.fixture(scope="session")
def kafka_admin(kafka: KafkaInfo) -> Iterator[KafkaAdminClient]:
    """One admin client for the session's provisioning (a login per test would cost more than the test)."""
    admin = KafkaAdminClient(**kafka.client(), client_id="test-provision", request_timeout_ms=30000)
    yield admin
    admin.close()


@pytest.fixture(scope="session")
def postgres_server() -> PostgresInfo:
    return postgres_info()


@pytest.fixture
def topic_prefix(kafka: KafkaInfo, kafka_admin: KafkaAdminClient) -> str:
    """Each test gets its own topics, so tests on the shared broker never see each other's messages.

    They are provisioned as in production: the four topics, and every principal's ACLs on them.
    """
    prefix = f"t{uuid.uuid4().hex[:10]}."
    provision_prefix(kafka.settings(prefix), admin=kafka_admin)
    return prefix


@pytest.fixture
def postgres_db(postgres_server: PostgresInfo) -> Iterator[PostgresInfo]:
    """A fresh, empty database for one test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.dsn("postgres"), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.with_dbname(name)
    with psycopg.connect(postgres_server.dsn("postgres"), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The IDO_* settings of one event store; every test using it runs on SQLite and on PostgreSQL."""
    env = {"IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys")}
    if request.param == "sqlite":
        env["IDO_EVENT_STORE"] = "sqlite"
        return env
    database: PostgresInfo = request.getfixturevalue("postgres_db")
    env.update(database.settings_env())
    return env


def pytest_report_header() -> list[str]:
    return [
        f"kafka: {os.environ.get('TEST_KAFKA_BOOTSTRAP', '(not set)')}",
        f"postgres: {os.environ.get('TEST_POSTGRES_PORT', '(not set)')}",
    ]


@pytest.fixture
def settings(store_env: dict[str, str]) -> Settings:
    """Settings of one test on the store of ``store_env`` (SQLite and PostgreSQL)."""
    return load_settings(store_env)


@pytest.fixture
def tokens(settings: Settings) -> TokenFactory:
    return TokenFactory(settings)
