"""The suite's wiring to the three-broker cluster (issue 19): the session's Kafka named by a list of
addresses, its replication given to every process a test starts, and the figures saying which Kafka
they came from. Fast (no broker: listening sockets stand in for the three nodes)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.config import TopicReplication, load_settings
from tests.resilience.figures import kafka_described
from tests.resilience.support import StackEnv
from tests.support.infra import KafkaInfo, bootstrap_addresses, kafka_info

CLUSTER_ENV = {"TEST_KAFKA_REPLICATION_FACTOR": "3", "TEST_KAFKA_MIN_INSYNC_REPLICAS": "2"}


@pytest.fixture
def three_listeners() -> Iterator[list[int]]:
    """Three ports of 127.0.0.1 that accept connections, as the cluster's three nodes would."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(3)]
    try:
        yield [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_bootstrap_addresses_of_one_broker_and_of_three() -> None:
    assert bootstrap_addresses("127.0.0.1:19092") == [("127.0.0.1", 19092)]
    assert bootstrap_addresses("127.0.0.1:29411,127.0.0.1:29413, 127.0.0.1:29415") == [
        ("127.0.0.1", 29411), ("127.0.0.1", 29413), ("127.0.0.1", 29415)]


@pytest.mark.parametrize("text", ["127.0.0.1", "127.0.0.1:", ":9092", "127.0.0.1:9092,", "127.0.0.1:70000", "h:x"])
def test_bootstrap_addresses_refuse_what_is_not_host_port(text: str) -> None:
    with pytest.raises(ValueError, match="not host:port"):
        bootstrap_addresses(text)


def test_kafka_info_of_the_cluster_has_its_three_addresses_and_its_replication(
    monkeypatch: pytest.MonkeyPatch, three_listeners: list[int], tmp_path: Path
) -> None:
    bootstrap = ",".join(f"127.0.0.1:{port}" for port in three_listeners)
    for name, value in {**CLUSTER_ENV, "TEST_KAFKA_BOOTSTRAP": bootstrap,
                        "TEST_KAFKA_CREDENTIALS_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    assert kafka_info() == KafkaInfo(bootstrap, str(tmp_path), replication_factor=3, min_insync_replicas=2)


def test_kafka_info_fails_naming_a_cluster_node_that_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, three_listeners: list[int], tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        silent = int(probe.getsockname()[1])
    bootstrap = ",".join(f"127.0.0.1:{port}" for port in [*three_listeners[:2], silent])
    monkeypatch.setenv("TEST_KAFKA_BOOTSTRAP", bootstrap)
    monkeypatch.setenv("TEST_KAFKA_CREDENTIALS_DIR", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=rf"no broker answers at 127\.0\.0\.1:{silent} of "):
        kafka_info()


def test_every_process_of_a_stack_on_the_cluster_gets_its_replication(tmp_path: Path) -> None:
    cluster = KafkaInfo("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", str(tmp_path), 3, 2)
    env = StackEnv(tmp_path, cluster, None, provisioned=True).env()  # provisioned: no broker here
    wiring = (env["KAFKA_BOOTSTRAP_SERVERS"], env["IDO_KAFKA_REPLICATION_FACTOR"], env["IDO_KAFKA_MIN_INSYNC_REPLICAS"])
    assert wiring == ("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "3", "2")
    assert load_settings(env).kafka_topic_replication == TopicReplication(factor=3, min_insync=2)
    single = StackEnv(tmp_path, KafkaInfo("127.0.0.1:1", str(tmp_path)), None, provisioned=True).env()
    assert load_settings(single).kafka_topic_replication == TopicReplication(factor=1, min_insync=1)


def test_the_figures_say_which_kafka_they_ran_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KAFKA_BOOTSTRAP", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3")
    for name, value in CLUSTER_ENV.items():
        monkeypatch.setenv(name, value)
    assert kafka_described() == "a 3-broker cluster (replication factor 3, min.insync.replicas 2)"
    for name in CLUSTER_ENV:
        monkeypatch.delenv(name)
    assert kafka_described() == "the single broker"
