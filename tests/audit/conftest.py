"""Fixtures of the audit tests: settings on both stores with this test's own topics."""

from __future__ import annotations

import pytest

from contracts.topics import ALL_TOPICS
from services.common.adapters.kafka import ensure_topics
from services.common.config import Settings, load_settings
from tests.support.infra import KafkaInfo


@pytest.fixture
def env(store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str) -> dict[str, str]:
    return {**store_env, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "IDO_TOPIC_PREFIX": topic_prefix}


@pytest.fixture
def live(env: dict[str, str], kafka: KafkaInfo) -> Settings:
    settings = load_settings(env)
    ensure_topics(kafka.bootstrap_servers, ALL_TOPICS, settings.topic_prefix)
    return settings
