"""scripts/kafka-cluster.sh for a test: three nodes on six free ports and a state dir of the test's own,
with its nodes stopped, killed, restarted and wiped one at a time. Everything on 127.0.0.1; every call
of the script is bounded in time."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from services.common.config import MIN_INSYNC_REPLICAS, REPLICATION_FACTOR, Settings
from tests.support.infra import KafkaInfo

REPO = Path(__file__).resolve().parents[2]
SCRIPT = "scripts/kafka-cluster.sh"
NODES = (1, 2, 3)
PRODUCTION_REPLICATION = {REPLICATION_FACTOR: "3", MIN_INSYNC_REPLICAS: "2"}
"""The settings a cluster's processes run with (docs/operations.md)."""


def _free_ports(count: int) -> list[int]:
    # Held open together so the six differ; other developers' servers may hold any fixed port.
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


class OwnCluster:
    def __init__(self, state_dir: Path):
        ports = _free_ports(6)
        self.ports = ports[:3]
        self.state_dir = state_dir
        self.env = {
            "KAFKA_CLUSTER_STATE_DIR": str(state_dir),
            "KAFKA_CLUSTER_PORTS": ",".join(map(str, ports[:3])),
            "KAFKA_CLUSTER_CONTROLLER_PORTS": ",".join(map(str, ports[3:])),
            "KAFKA_CREDENTIALS_DIR": str(state_dir / "credentials"),
        }
        self.bootstrap = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        self.info = KafkaInfo(
            self.bootstrap, self.env["KAFKA_CREDENTIALS_DIR"],
            replication_factor=int(PRODUCTION_REPLICATION[REPLICATION_FACTOR]),
            min_insync_replicas=int(PRODUCTION_REPLICATION[MIN_INSYNC_REPLICAS]),
        )
        """Its credentials and its replication: a StackEnv on it provisions users, ACLs and topics with 3 copies."""

    def run(self, *args: str, timeout_s: float = 240) -> str:
        done = subprocess.run(
            ["bash", SCRIPT, *args], cwd=REPO, env={**os.environ, **self.env},
            capture_output=True, text=True, timeout=timeout_s,
        )
        if done.returncode != 0:
            raise AssertionError(f"{SCRIPT} {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout.strip()

    def start(self) -> str:
        return self.run("start")

    def stop(self) -> None:
        """All three nodes at once (the script stops them in parallel: one by one, the last would wait out
        its grace for a quorum already gone)."""
        self.run("stop", timeout_s=120)

    def __enter__(self) -> OwnCluster:
        """Started; stopped on leaving, whatever happened (also after a failed start: the script stops
        whatever nodes did start, and SIGKILLs a node that will not stop)."""
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_keeping_data(self) -> None:
        """The three nodes again on their data (after ``stop``): the same cluster, topics and credentials."""
        self.run("start", "--keep-data")

    def start_node(self, node: int) -> None:
        self.run("start", str(node))

    def stop_node(self, node: int) -> None:
        self.run("stop", str(node), timeout_s=90)

    def kill_node(self, node: int) -> None:
        self.run("kill", str(node), timeout_s=30)

    def wipe_node(self, node: int) -> None:
        self.run("wipe", str(node))

    def pid(self, node: int) -> int:
        return int(self.run("pid", str(node), timeout_s=10))

    def quorum_leader(self) -> int:
        return int(self.run("leader", timeout_s=10))

    def rss_bytes(self) -> int:
        """Resident memory of the running nodes together (VmRSS of each JVM)."""
        total = 0
        for node in NODES:
            try:
                pid = self.pid(node)
            except AssertionError:
                continue  # not running
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue  # ended since the script named it
            # a node killed a moment ago may be a zombie, which has no VmRSS: it holds no memory
            kib = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), "0")
            total += int(kib) * 1024
        return total

    def settings(self, topic_prefix: str = "") -> Settings:
        return self.info.settings(topic_prefix)


def topics_replication(info: KafkaInfo, topics: list[str]) -> dict[str, tuple[set[int], str]]:
    """Per topic: the numbers of copies its partitions have, and its min.insync.replicas, as the brokers
    say (the admin asks): shows that a stack's processes made their topics with the replication asked."""
    admin = KafkaAdminClient(**info.client(), client_id="test-replication", request_timeout_ms=30000)
    try:
        copies = {t["name"]: {len(p["replica_nodes"]) for p in t["partitions"]} for t in admin.describe_topics(topics)}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics])["topic"]
        return {topic: (copies.get(topic, set()), configs[topic]["min.insync.replicas"]["value"]) for topic in topics}
    finally:
        admin.close()


def partition_states(info: KafkaInfo, topics: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (leader node id, copies in sync), as the brokers say now (-1: no leader)."""
    admin = KafkaAdminClient(**info.client(), client_id="test-partitions", request_timeout_ms=15000)
    try:
        return {(t["name"], p["partition_index"]): (p["leader_id"], len(p["isr_nodes"]))
                for t in admin.describe_topics(topics) for p in t["partitions"]}
    finally:
        admin.close()
