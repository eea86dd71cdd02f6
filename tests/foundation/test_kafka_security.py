"""The broker's authentication and least-privilege ACLs, against the real broker `make test` starts
(SASL_PLAINTEXT with SCRAM-SHA-512, StandardAuthorizer, nothing allowed without an ACL).

Every refusal is asserted explicitly, beside a positive control with the right credentials: with an
allow-all broker, or one without SASL, these tests fail.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)

from contracts import parse_message
from contracts.canonical import canonical_json
from contracts.topics import BRIDGE, DEAD_LETTER, EXPENDITURES, GRANTS
from services.common.adapters.kafka import create_producer
from services.common.kafka_credentials import (
    ADMIN,
    AUDIT,
    FINANCE,
    PROBE,
    PROJECTOR,
    RELAYS,
    password_file,
    read_password,
)
from services.common.kafka_provisioning import FINANCE_GROUP, rotate, wait_until_logins_take
from services.common.logging_setup import log_handler
from tests.ledger.events import Streams, at
from tests.support.infra import KafkaInfo
from tests.support.kafka_leaks import closing_leaked_clients


@pytest.fixture(autouse=True)
def _no_client_left_running() -> Iterator[None]:
    """The clients these tests see refused leave IO threads behind (tests/support/kafka_leaks.py)."""
    with closing_leaked_clients():
        yield


QUICK = {"bootstrap_timeout_ms": 4000, "request_timeout_ms": 5000}
DATA_TOPICS = (GRANTS, BRIDGE, EXPENDITURES)


def producer_as(kafka: KafkaInfo, principal: str) -> KafkaProducer:
    """A producer set as the services' (idempotent, acks=all), logged in as ``principal``."""
    quick = {"bootstrap_timeout_ms": 4000, "max_block_ms": 5000}
    return create_producer({**kafka.client(principal), **quick}, client_id=f"test-{principal}")


def send(producer: KafkaProducer, topic: str, value: bytes, key: bytes = b"GM0363") -> Any:
    try:
        return producer.send(topic, key=key, value=value).get(timeout=15)
    finally:
        producer.close(timeout=2)


def assert_write_refused(kafka: KafkaInfo, principal: str, topic: str) -> None:
    """The broker refuses the write: no WRITE on the topic (TopicAuthorizationFailed), or, for a principal
    with no WRITE anywhere, already the idempotent producer's InitProducerId (ClusterAuthorizationFailed)."""
    with pytest.raises(KafkaError) as refused:
        send(producer_as(kafka, principal), topic, b'{"forged": true}')
    error = refused.value
    assert isinstance(error, TopicAuthorizationFailedError) or ClusterAuthorizationFailedError.__name__ in str(error), (
        f"{principal} -> {topic}: {error!r}"
    )


def assert_read_refused(kafka: KafkaInfo, principal: str, topic: str, may_describe: bool = False) -> None:
    """The topic holds messages (the admin sees them), yet ``principal`` fetches nothing from it; without
    DESCRIBE it is not even told the topic's partitions, and asking its offsets is refused outright."""
    partitions = admin_partitions(kafka, topic)
    assert end_offsets(kafka, topic) > 0
    consumer = KafkaConsumer(**kafka.client(principal), **QUICK, group_id=None, enable_auto_commit=False)
    try:
        assert bool(consumer.partitions_for_topic(topic)) is may_describe
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        if may_describe:  # it knows the partitions: the fetch itself is refused
            with pytest.raises(TopicAuthorizationFailedError):
                consumer.poll(timeout_ms=1500)
                consumer.poll(timeout_ms=1500)
        else:  # the topic is hidden from it: nothing comes, and its offsets are refused
            assert consumer.poll(timeout_ms=1500) == {} and consumer.poll(timeout_ms=1500) == {}
            with pytest.raises(TopicAuthorizationFailedError):
                consumer.end_offsets(partitions)
    finally:
        consumer.close()


def admin_partitions(kafka: KafkaInfo, topic: str) -> list[TopicPartition]:
    consumer = KafkaConsumer(**kafka.client(), group_id=None, enable_auto_commit=False)
    try:
        return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    finally:
        consumer.close()


def end_offsets(kafka: KafkaInfo, topic: str) -> int:
    """The number of messages on ``topic``, read as the admin (what actually reached the broker)."""
    partitions = admin_partitions(kafka, topic)
    assert partitions, f"{topic} does not exist"
    consumer = KafkaConsumer(**kafka.client(), group_id=None, enable_auto_commit=False)
    try:
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def forged_advance(prefix: str) -> tuple[str, bytes]:
    """An advance of € 9 M to GM0363 with a correctly self-computed hash: valid by every contract check,
    so only the broker can keep it off the topic."""
    streams = Streams(prefix)
    streams.event("AdvancePaid", "grant-2024-GM0363", "GM0363", at("2024-02-01"), grant_id="grant-2024-GM0363",
                  year=2024, municipality_code="GM0363", amount_cents=900_000_000, paid_on="2024-02-01")
    topic, _key, envelope = streams.sent[0]
    value = canonical_json(envelope)
    assert parse_message(value)["hash"] == envelope["hash"]  # a forgery the contracts cannot tell apart
    return topic, value


def test_a_forged_message_from_a_client_without_credentials_is_refused(kafka: KafkaInfo, topic_prefix: str) -> None:
    topic, forged = forged_advance(topic_prefix)
    before = end_offsets(kafka, topic)
    plain = {"bootstrap_servers": kafka.bootstrap_servers, "security_protocol": "PLAINTEXT"}
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):  # no SASL handshake: no connection
        send(KafkaProducer(**plain, **QUICK, max_block_ms=4000), topic, forged)
    assert end_offsets(kafka, topic) == before, "the forged advance reached the topic"
    # control: the broker is there, and the same bytes from the payments relay are taken
    assert send(producer_as(kafka, RELAYS["payments"]), topic, forged).offset >= 0
    assert end_offsets(kafka, topic) == before + 1


def test_a_forged_message_with_the_projectors_credentials_is_refused(kafka: KafkaInfo, topic_prefix: str) -> None:
    topic, forged = forged_advance(topic_prefix)
    before = end_offsets(kafka, topic)
    with pytest.raises(TopicAuthorizationFailedError):  # it may write the dead-letter topic only
        send(producer_as(kafka, PROJECTOR), topic, forged)
    assert end_offsets(kafka, topic) == before, "the forged advance reached the topic"


def test_a_client_without_credentials_can_neither_produce_nor_consume(kafka: KafkaInfo, topic_prefix: str) -> None:
    topic = f"{topic_prefix}{EXPENDITURES.name}"
    assert send(producer_as(kafka, RELAYS["ledger"]), topic, b"written by the relay").offset >= 0
    plain = {"bootstrap_servers": kafka.bootstrap_servers, "security_protocol": "PLAINTEXT", **QUICK}
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        send(KafkaProducer(**plain, max_block_ms=4000), topic, b"anonymous")
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        consumer = KafkaConsumer(topic, **plain, group_id=None, auto_offset_reset="earliest")
        try:
            consumer.poll(timeout_ms=3000)
        finally:
            consumer.close()


def failed_logins(kafka: KafkaInfo) -> int:
    """How many logins the broker refused for a wrong password so far (its log, at INFO)."""
    log = Path(kafka.credentials_dir).parent / "kafka.log"  # scripts/kafka.sh: <state dir>/credentials
    assert log.exists(), f"the broker's log is not beside its credentials: {log}"
    return log.read_text(encoding="utf-8", errors="replace").count("due to invalid credentials with SASL mechanism")


def test_a_wrong_password_is_refused(kafka: KafkaInfo, topic_prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    wrong = {**kafka.client(FINANCE), "sasl_plain_password": "not-the-password-0123456789", **QUICK}
    refused_before = failed_logins(kafka)
    with caplog.at_level(logging.DEBUG, logger="kafka"), pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        KafkaConsumer(f"{topic_prefix}{GRANTS.name}", **wrong, group_id=None).close()
    assert failed_logins(kafka) > refused_before  # refused as a wrong password, not for want of a broker
    assert wrong["sasl_plain_password"] not in caplog.text
    KafkaConsumer(f"{topic_prefix}{GRANTS.name}", **kafka.client(FINANCE), **QUICK, group_id=None).close()


@pytest.mark.parametrize("principal", [PROJECTOR, FINANCE, AUDIT, PROBE])
def test_readers_cannot_produce_to_any_data_topic(kafka: KafkaInfo, topic_prefix: str, principal: str) -> None:
    for spec in DATA_TOPICS:
        topic = f"{topic_prefix}{spec.name}"
        assert_write_refused(kafka, principal, topic)
        assert end_offsets(kafka, topic) == 0, f"{principal} wrote to {topic}"


def test_a_relay_writes_its_own_topic_only(kafka: KafkaInfo, topic_prefix: str) -> None:
    own = {"payments": GRANTS, "bridge": BRIDGE, "ledger": EXPENDITURES}
    for service, principal in RELAYS.items():
        for spec in (*DATA_TOPICS, DEAD_LETTER):
            topic = f"{topic_prefix}{spec.name}"
            if spec is own[service]:
                assert send(producer_as(kafka, principal), topic, b"mine").offset >= 0  # the positive control
            else:
                assert_write_refused(kafka, principal, topic)
    for spec in DATA_TOPICS:
        assert end_offsets(kafka, f"{topic_prefix}{spec.name}") == 1
    assert end_offsets(kafka, f"{topic_prefix}{DEAD_LETTER.name}") == 0


def test_only_the_projector_writes_the_dead_letter_topic(kafka: KafkaInfo, topic_prefix: str) -> None:
    topic = f"{topic_prefix}{DEAD_LETTER.name}"
    for principal in (*RELAYS.values(), FINANCE, AUDIT, PROBE):
        assert_write_refused(kafka, principal, topic)
    assert send(producer_as(kafka, PROJECTOR), topic, b"a refused message").offset >= 0
    assert end_offsets(kafka, topic) == 1
    assert_read_refused(kafka, FINANCE, topic)  # the dead-letter topic is the operators' and the auditors'
    assert end_offsets(kafka, topic) == 1


def consume_as(kafka: KafkaInfo, principal: str, topic: str, group: str | None, expected: int) -> list[bytes]:
    consumer = KafkaConsumer(
        topic, **kafka.client(principal), **QUICK, group_id=group, auto_offset_reset="earliest",
        enable_auto_commit=False, consumer_timeout_ms=8000,
    )
    found: list[bytes] = []
    try:
        for message in consumer:
            found.append(message.value)
            if len(found) >= expected:
                if group is not None:
                    consumer.commit()
                break
    finally:
        consumer.close()
    return found


def test_finance_consumes_in_its_own_groups_and_nothing_else(kafka: KafkaInfo, topic_prefix: str) -> None:
    topic = f"{topic_prefix}{GRANTS.name}"
    send(producer_as(kafka, RELAYS["payments"]), topic, b"an advance")
    group = f"{topic_prefix}{FINANCE_GROUP}-gemeente-x"
    assert consume_as(kafka, FINANCE, topic, group, 1) == [b"an advance"]
    with pytest.raises(GroupAuthorizationFailedError):  # a group outside its ACL's prefix
        consume_as(kafka, FINANCE, topic, f"{topic_prefix}ledger-balances", 1)
    assert_read_refused(kafka, RELAYS["payments"], topic, may_describe=True)  # a relay writes, never reads
    assert_read_refused(kafka, PROBE, topic, may_describe=True)  # the probes see offsets, never content


def test_rotation_refuses_the_old_password_and_takes_the_new(kafka: KafkaInfo, topic_prefix: str) -> None:
    topic = f"{topic_prefix}{GRANTS.name}"
    send(producer_as(kafka, RELAYS["payments"]), topic, b"before the rotation")
    old = kafka.client(FINANCE)
    settings = kafka.settings()
    rotate(settings, FINANCE)
    new_password = read_password(settings.kafka_credentials_dir, FINANCE)
    assert new_password != old["sasl_plain_password"]
    path = password_file(settings.kafka_credentials_dir, FINANCE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    refused_before = failed_logins(kafka)
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        KafkaConsumer(topic, **old, **QUICK, group_id=None).close()
    assert failed_logins(kafka) > refused_before
    # a client built now reads the new password from the file
    assert consume_as(kafka, FINANCE, topic, None, 1) == [b"before the rotation"]


def test_a_rotation_returns_only_once_every_broker_takes_the_new_password(kafka: KafkaInfo) -> None:
    """The broker applies a changed password a moment after the controller answered; the rotation waits for
    every broker to log the principal in with the new one (so the old one is refused by then). A password no
    broker takes is waited for until the bound, then named."""
    admin = KafkaAdminClient(**kafka.client(ADMIN), request_timeout_ms=10000)
    try:
        assert len(admin.describe_cluster()["brokers"]) >= 1
        wait_until_logins_take(admin, kafka.client(FINANCE), timeout_s=5)  # its own password: at once
        wrong = {**kafka.client(FINANCE), "sasl_plain_password": "not-the-password"}
        started = time.monotonic()
        with pytest.raises(RuntimeError, match=f"does not log {FINANCE} in with the new password after 2 s"):
            wait_until_logins_take(admin, wrong, timeout_s=2)
        assert 2 <= time.monotonic() - started < 30
    finally:
        admin.close()


@pytest.fixture
def credentials_dir(kafka: KafkaInfo) -> Iterator[Path]:
    yield Path(kafka.credentials_dir)


def test_password_files_are_private_and_the_broker_log_holds_none(credentials_dir: Path) -> None:
    assert stat.S_IMODE(credentials_dir.stat().st_mode) == 0o700
    passwords = []
    for principal in (ADMIN, *RELAYS.values(), PROJECTOR, AUDIT, FINANCE, PROBE):
        path = password_file(credentials_dir, principal)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        passwords.append(read_password(credentials_dir, principal))
    assert len(set(passwords)) == len(passwords)
    state_dir = credentials_dir.parent  # scripts/test-servers.sh: <KAFKA_STATE_DIR>/credentials
    properties = state_dir / "server.properties"
    if properties.exists():
        assert stat.S_IMODE(properties.stat().st_mode) == 0o600
    log = state_dir / "kafka.log"
    if log.exists():
        text = log.read_text(encoding="utf-8", errors="replace")
        assert not [p for p in passwords if p in text], "a password is in the broker's log"


def test_no_credentials_dir_means_a_clear_error_naming_the_file(tmp_path: Path, kafka: KafkaInfo) -> None:
    from services.common.adapters.kafka import client_config
    from services.common.config import load_settings
    from services.common.kafka_credentials import CredentialError

    settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "IDO_KEYS_DIR": str(tmp_path)})
    assert settings.kafka_credentials_dir == tmp_path / "kafka"
    with pytest.raises(CredentialError, match=str(tmp_path / "kafka" / "ido-finance.password")):
        client_config(settings, FINANCE)
    assert not os.path.exists(tmp_path / "kafka")


def test_a_logged_client_configuration_never_shows_the_password(kafka: KafkaInfo) -> None:
    """kafka-python's admin client logs its configuration at DEBUG: our log handler masks the password."""
    stream = io.StringIO()
    handler = log_handler(stream, "json")
    logger = logging.getLogger("kafka.admin.client")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        KafkaAdminClient(**kafka.client(FINANCE), **QUICK).close()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    written = stream.getvalue()
    assert "sasl_plain_password" in written  # the configuration was logged ...
    assert read_password(Path(kafka.credentials_dir), FINANCE) not in written  # ... without the password
