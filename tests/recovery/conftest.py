"""Fixtures of the recovery tests: the audit's settings (both stores, this test's topics) and a lost store's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from services.common.config import Settings, load_settings
from tests.audit.conftest import env, live  # noqa: F401 - the same stores and topics as the audit's tests
from tests.support.infra import PostgresInfo


@pytest.fixture
def lost_env(env: dict[str, str], request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:  # noqa: F811
    """The settings of the same services after their store was lost: an empty data directory or database,
    the same keys (a backup holds them) and the same topics."""
    if env["IDO_EVENT_STORE"] == "sqlite":
        yield {**env, "IDO_DATA_DIR": str(tmp_path / "recovered")}
        return
    server: PostgresInfo = request.getfixturevalue("postgres_server")
    name = f"recovered_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**env, "POSTGRES_DBNAME": name}
    finally:
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def lost(lost_env: dict[str, str]) -> Settings:
    return load_settings(lost_env)
