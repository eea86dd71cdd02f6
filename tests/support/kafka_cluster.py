"""scripts/kafka-cluster.sh for a test: three nodes on six free ports and a state dir of the test's own,
with its nodes stopped, killed, restarted and wiped one at a time. Everything on 127.0.0.1; every call
of the script is bounded in time."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from services.common.config import Settings, load_settings
from tests.support.infra import KafkaInfo

REPO = Path(__file__).resolve().parents[2]
SCRIPT = "scripts/kafka-cluster.sh"
NODES = (1, 2, 3)
PRODUCTION_REPLICATION = {"IDO_KAFKA_REPLICATION_FACTOR": "3", "IDO_KAFKA_MIN_INSYNC_REPLICAS": "2"}
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
        self.info = KafkaInfo(self.bootstrap, self.env["KAFKA_CREDENTIALS_DIR"])

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
        self.run("stop", timeout_s=120)

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
            status = Path(f"/proc/{pid}/status").read_text()
            kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
            total += int(kib) * 1024
        return total

    def settings(self, topic_prefix: str = "") -> Settings:
        return load_settings({**self.info.settings_env(), **PRODUCTION_REPLICATION, "IDO_TOPIC_PREFIX": topic_prefix})
