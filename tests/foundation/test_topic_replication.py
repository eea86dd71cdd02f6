"""Topics are created with the replication the settings ask for (IDO_KAFKA_REPLICATION_FACTOR,
IDO_KAFKA_MIN_INSYNC_REPLICAS), against the single broker `make test` starts; the three-broker cluster's
RF 3 / min.insync.replicas=2 is shown by tests/cluster/test_cluster.py (`make resilience`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from contracts.topics import GRANTS
from services.common.adapters.kafka import TopicReplicationError, create_topics
from services.common.config import TopicReplication
from tests.support.infra import KafkaInfo


@pytest.fixture
def admin(kafka: KafkaInfo) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(**kafka.client(), client_id="test-replication", request_timeout_ms=30000)
    yield client
    client.close()


def test_provisioned_topics_carry_the_min_insync_replicas_of_the_settings(
    admin: KafkaAdminClient, topic_prefix: str
) -> None:
    name = f"{topic_prefix}{GRANTS.name}"
    [topic] = admin.describe_topics([name])
    assert {len(partition["replica_nodes"]) for partition in topic["partitions"]} == {1}
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])["topic"][name]
    assert configs["min.insync.replicas"]["value"] == "1"
    assert configs["retention.ms"]["value"] == "-1"  # the contract's own settings are kept beside it


def test_an_existing_topic_with_fewer_copies_than_asked_is_refused_naming_the_setting(
    admin: KafkaAdminClient, topic_prefix: str
) -> None:
    # The topic exists with one copy; a cluster's provisioning asking for three must not carry on silently.
    refused = rf"{topic_prefix}{GRANTS.name} exists with 1 .*IDO_KAFKA_REPLICATION_FACTOR"
    with pytest.raises(TopicReplicationError, match=refused):
        create_topics(admin, [GRANTS], topic_prefix, TopicReplication(factor=3, min_insync=2))
    create_topics(admin, [GRANTS], topic_prefix, TopicReplication(factor=1, min_insync=1))  # as asked: no error
