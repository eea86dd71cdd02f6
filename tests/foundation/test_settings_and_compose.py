"""Settings are checked in one place, and docker-compose.yml stays in step with them and the CLI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.cli import build_parser
from services.common.config import SettingError, TopicReplication, load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"IDO_EVENT_STORE": "mysql"}, "IDO_EVENT_STORE"),
        ({"IDO_EVENT_STORE": "postgres", "POSTGRES_DBNAME": "x", "POSTGRES_USER": "x"}, "POSTGRES_HOST"),
        ({"IDO_RELAY_BATCH_SIZE": "many"}, "IDO_RELAY_BATCH_SIZE"),
        ({"IDO_RELAY_BATCH_SIZE": "0"}, "IDO_RELAY_BATCH_SIZE"),
        ({"IDO_RELAY_BATCH_SIZE": "\u0661\u0662"}, "IDO_RELAY_BATCH_SIZE"),  # Arabic-Indic digits: int() takes them
        ({"IDO_RELAY_BATCH_SIZE": "1_000"}, "IDO_RELAY_BATCH_SIZE"),
        ({"IDO_RELAY_BATCH_SIZE": " 12"}, "IDO_RELAY_BATCH_SIZE"),
        ({"IDO_RELAY_BATCH_SIZE": "--5"}, "IDO_RELAY_BATCH_SIZE"),
        ({"IDO_BIND_HOST": ""}, "IDO_BIND_HOST"),
        ({"IDO_YEARS_OPEN_BEFORE_AWARD": "2024,next"}, "IDO_YEARS_OPEN_BEFORE_AWARD"),
        ({"IDO_YEARS_OPEN_BEFORE_AWARD": "1999"}, "IDO_YEARS_OPEN_BEFORE_AWARD"),
        ({"IDO_KAFKA_REPLICATION_FACTOR": "0"}, "IDO_KAFKA_REPLICATION_FACTOR"),
        ({"IDO_KAFKA_REPLICATION_FACTOR": "three"}, "IDO_KAFKA_REPLICATION_FACTOR"),
        ({"IDO_KAFKA_MIN_INSYNC_REPLICAS": "0"}, "IDO_KAFKA_MIN_INSYNC_REPLICAS"),
        # more copies in sync than exist: Kafka would take it and then refuse every acks=all write
        ({"IDO_KAFKA_REPLICATION_FACTOR": "3", "IDO_KAFKA_MIN_INSYNC_REPLICAS": "4"}, "IDO_KAFKA_MIN_INSYNC_REPLICAS"),
        ({"IDO_KAFKA_MIN_INSYNC_REPLICAS": "2"}, "IDO_KAFKA_MIN_INSYNC_REPLICAS"),  # default factor 1
    ],
)
def test_a_bad_setting_is_refused_naming_the_setting(env: dict[str, str], setting: str) -> None:
    with pytest.raises(SettingError, match=f"^setting {setting}: "):
        load_settings(env)


def test_years_open_before_award_are_a_list_of_grant_years_passed_to_the_ledger() -> None:
    settings = load_settings({"IDO_YEARS_OPEN_BEFORE_AWARD": " 2027, 2026,"})
    assert settings.years_open_before_award == frozenset({2026, 2027})
    assert settings.eventsourcing_env("ledger")["IDO_YEARS_OPEN_BEFORE_AWARD"] == "2026,2027"
    assert load_settings({}).years_open_before_award == frozenset()


def test_topic_replication_is_one_copy_by_default_and_three_with_two_in_sync_on_a_cluster() -> None:
    assert load_settings({}).kafka_topic_replication == TopicReplication(factor=1, min_insync=1)
    cluster = load_settings({"IDO_KAFKA_REPLICATION_FACTOR": "3", "IDO_KAFKA_MIN_INSYNC_REPLICAS": "2"})
    assert cluster.kafka_topic_replication == TopicReplication(factor=3, min_insync=2)


def test_defaults_bind_to_loopback_and_use_sqlite() -> None:
    settings = load_settings({})
    assert settings.bind_host == "127.0.0.1"
    assert settings.eventsourcing_env("payments")["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"


def test_postgres_event_store_keeps_db_functions_off() -> None:
    env = {"IDO_EVENT_STORE": "postgres", "POSTGRES_HOST": "h", "POSTGRES_DBNAME": "d", "POSTGRES_USER": "u"}
    assert load_settings(env).eventsourcing_env("ledger")["POSTGRES_ENABLE_DB_FUNCTIONS"] == "n"


def test_compose_services_run_real_cli_commands_with_settings_the_code_reads() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    config_source = (REPO / "services/common/config.py").read_text()
    parser = build_parser()
    ours = {name: spec for name, spec in compose["services"].items() if spec.get("image") == "ido-ledger:local"}
    assert {"payments", "bridge", "ledger", "relay-payments", "relay-bridge", "relay-ledger", "projector"} <= set(ours)
    for name, spec in ours.items():
        command = spec["command"]
        assert command[0] == "ido", name
        parser.parse_args(command[1:])  # exits (fails the test) on an unknown command
        for key in spec["environment"]:
            assert re.search(rf'"{key}"', config_source) or key.startswith("IDO_") and key.endswith("_PORT"), (
                f"{name}: {key} is not a setting the services read"
            )


def test_compose_takes_the_postgres_password_from_a_secret_with_no_default() -> None:
    """Issue 16: `${POSTGRES_PASSWORD:-ido}` started every stack with the same known password."""
    text = (REPO / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    assert "POSTGRES_PASSWORD:" not in text and ":-" not in text
    assert compose["secrets"]["postgres_password"] == {"file": "./secrets/postgres.password"}
    for name, spec in compose["services"].items():
        if spec.get("image") == "ido-ledger:local" or name == "postgres":
            assert spec["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres.password", name
            assert {"source": "postgres_password", "target": "postgres.password"} in spec["secrets"], name
    for service in ("payments", "bridge", "ledger"):  # they verify tokens: the list must be there
        assert {"source": "revoked_tokens", "target": "revoked_tokens.txt"} in compose["services"][service]["secrets"]


def test_compose_cluster_profile_has_the_settings_of_the_cluster_script() -> None:
    """Issue 19: the compose cluster (untested without Docker) must not drift from scripts/kafka-cluster.sh."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    script = (REPO / "scripts/kafka-cluster.sh").read_text()
    heap = re.search(r"KAFKA_CLUSTER_HEAP_OPTS:-([^}]*)\}", script)
    assert heap and heap.group(1) == "-Xms512m -Xmx512m -XX:+AlwaysPreTouch"
    assert re.search(r"^REPLICATION_FACTOR=3$", script, re.M) and re.search(r"^MIN_INSYNC_REPLICAS=2$", script, re.M)
    nodes = {name: compose["services"][name] for name in ("kafka-1", "kafka-2", "kafka-3")}
    for number, (name, node) in enumerate(nodes.items(), start=1):
        env = node["environment"]
        assert node["profiles"] == ["cluster"], name
        assert env["KAFKA_NODE_ID"] == str(number) and env["KAFKA_ADVERTISED_HOST"] == name
        assert env["KAFKA_QUORUM_VOTERS"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        assert (env["KAFKA_REPLICATION_FACTOR"], env["KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")
        assert env["KAFKA_HEAP_OPTS"] == heap.group(1)
    provision = compose["services"]["kafka-provision-cluster"]["environment"]
    assert (provision["IDO_KAFKA_REPLICATION_FACTOR"], provision["IDO_KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")


class _ComposeLoader(yaml.SafeLoader):
    """Reads Compose's merge tags (`!override`, `!reset`) as the value they carry, tagged."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    value: Any = loader.construct_mapping(node, deep=True) if isinstance(node, yaml.MappingNode) else (
        loader.construct_sequence(node, deep=True) if isinstance(node, yaml.SequenceNode) else None)
    return {"tag": node.tag, "value": value}


_ComposeLoader.add_constructor("!override", _tagged)
_ComposeLoader.add_constructor("!reset", _tagged)


def test_compose_cluster_file_puts_every_process_of_ours_on_the_three_brokers() -> None:
    """Issue 19 (untested without Docker): with docker-compose.cluster.yml every service of ours that talks
    to Kafka reaches kafka-1..3 with the cluster's replication and waits for the cluster's provisioning;
    the single node is left out."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    cluster = yaml.load((REPO / "docker-compose.cluster.yml").read_text(), Loader=_ComposeLoader)
    ours = {name for name, spec in compose["services"].items()
            if spec.get("image") == "ido-ledger:local" and "KAFKA_BOOTSTRAP_SERVERS" in spec["environment"]
            and "cluster" not in spec.get("profiles", []) and spec["command"][1:3] != ["kafka", "provision"]}
    assert ours == {"payments", "relay-payments", "bridge", "relay-bridge", "ledger", "relay-ledger", "projector",
                    "checkpointer"}
    assert set(cluster["services"]) == ours | {"kafka", "kafka-provision"}
    nodes = ",".join(f"{compose['services'][name]['hostname']}:9092" for name in ("kafka-1", "kafka-2", "kafka-3"))
    provision = compose["services"]["kafka-provision-cluster"]["environment"]
    for name in sorted(ours):
        spec = cluster["services"][name]
        assert spec["environment"] == {
            "KAFKA_BOOTSTRAP_SERVERS": nodes,
            "IDO_KAFKA_REPLICATION_FACTOR": provision["IDO_KAFKA_REPLICATION_FACTOR"],
            "IDO_KAFKA_MIN_INSYNC_REPLICAS": provision["IDO_KAFKA_MIN_INSYNC_REPLICAS"],
        }, name
        assert spec["depends_on"] == {"tag": "!override", "value": {
            "kafka-provision-cluster": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
        }}, name
        assert set(compose["services"][name]["depends_on"]) == {"kafka-provision", "postgres"}, name
    assert provision["KAFKA_BOOTSTRAP_SERVERS"] == nodes
    assert cluster["services"]["kafka"] == cluster["services"]["kafka-provision"] == {"profiles": ["single"]}
