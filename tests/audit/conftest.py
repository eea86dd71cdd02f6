"""Fixtures of the audit tests: settings on both stores with this test's own topics."""

from __future__ import annotations

import pytest

from services.common.config import Settings, load_settings
from tests.support.infra import KafkaInfo


@pytest.fixture
def env(store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str) -> dict[str, str]:
    # record_history posts before the awards are projected: its year is opened before the award (issue 15)
    return {**store_env, **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix,
            "IDO_YEARS_OPEN_BEFORE_AWARD": "2024"}


@pytest.fixture
def live(env: dict[str, str]) -> Settings:
    return load_settings(env)  # the topics and ACLs: the ``topic_prefix`` fixture
