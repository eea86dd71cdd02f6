"""`ido kafka provision` and `ido kafka rotate`: topics, SCRAM users and least-privilege ACLs, as ido-admin.

Provisioning is idempotent: it creates the missing topics (with ``IDO_TOPIC_PREFIX``), a SCRAM user
for every client principal that has none on the broker (its password file made if missing), and the
LITERAL ACLs below (creating an ACL that exists changes nothing). With ``allow.everyone.if.no.acl.found
=false`` on the broker, everything not listed is refused.

| principal | may |
|---|---|
| ido-relay-payments / -bridge / -ledger | WRITE, DESCRIBE its own topic (grants / bridge / expenditures) |
| ido-projector | READ, DESCRIBE the three topics; WRITE, DESCRIBE the dead-letter topic; |
| | READ groups ``<prefix>ledger-balances*`` |
| ido-audit | READ, DESCRIBE the three topics and the dead-letter topic; READ groups ``<prefix>ido-audit*`` |
| ido-finance | READ, DESCRIBE the three topics; READ groups ``<prefix>ido-finance*`` |
| ido-probe | DESCRIBE the three topics and the dead-letter topic (offsets for /readyz and /metrics, no content) |

The idempotent producers need no IDEMPOTENT_WRITE on the cluster: since Kafka 2.8 (KIP-679) WRITE on
a topic is enough for InitProducerId (checked against the 4.1 broker: tests/foundation/test_kafka_security.py).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    UserScramCredentialUpsertion,
)
from kafka.errors import KafkaError

from contracts.topics import ALL_TOPICS, DEAD_LETTER, PUBLISHED_TOPICS, TopicSpec
from services.common.adapters.kafka import AdminClient, ClientConfig, client_config, create_topics, ensure_topics
from services.common.config import Settings
from services.common.kafka_credentials import (
    ADMIN,
    AUDIT,
    CLIENT_PRINCIPALS,
    FINANCE,
    PROBE,
    PROJECTOR,
    RELAYS,
    CredentialError,
    PendingPassword,
    ensure_password,
)

log = logging.getLogger(__name__)

RELAY_TOPICS = {spec.producer: spec for spec in PUBLISHED_TOPICS}
"""The topic each service's relay writes: the producer the contract names (a service's ``DEFINITION.topic``)."""

PROJECTOR_GROUP = "ledger-balances"
"""The projector's consumer group (BalancesProjection's name; `ido project --group-id` must start with it)."""
AUDIT_GROUP = "ido-audit"
FINANCE_GROUP = "ido-finance"
"""A finance system's consumer groups start with this (after the topic prefix), e.g. ``ido-finance-gemeente-x``."""

SCRAM_ITERATIONS = 8192


def _acl(principal: str, operation: ACLOperation, resource: ResourceType, name: str,
         pattern: ACLResourcePatternType = ACLResourcePatternType.LITERAL) -> ACL:
    return ACL(
        principal=f"User:{principal}",
        host="*",
        operation=operation,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(resource, name, pattern),
    )


def _on_topics(principal: str, operations: Iterable[ACLOperation], topics: Iterable[str]) -> list[ACL]:
    return [_acl(principal, operation, ResourceType.TOPIC, topic) for topic in topics for operation in operations]


def acls_for_prefix(prefix: str) -> list[ACL]:
    """Every ACL of the client principals for the topics and groups of one topic prefix."""
    read = (ACLOperation.READ, ACLOperation.DESCRIBE)
    write = (ACLOperation.WRITE, ACLOperation.DESCRIBE)
    published = [f"{prefix}{spec.name}" for spec in PUBLISHED_TOPICS]
    dead_letter = f"{prefix}{DEAD_LETTER.name}"
    acls: list[ACL] = []
    for service, principal in RELAYS.items():
        acls += _on_topics(principal, write, [f"{prefix}{RELAY_TOPICS[service].name}"])
    acls += _on_topics(PROJECTOR, read, published)
    acls += _on_topics(PROJECTOR, write, [dead_letter])
    acls += _on_topics(AUDIT, read, [*published, dead_letter])
    acls += _on_topics(FINANCE, read, published)
    acls += _on_topics(PROBE, (ACLOperation.DESCRIBE,), [*published, dead_letter])
    for principal, group in ((PROJECTOR, PROJECTOR_GROUP), (AUDIT, AUDIT_GROUP), (FINANCE, FINANCE_GROUP)):
        acls.append(
            _acl(principal, ACLOperation.READ, ResourceType.GROUP, f"{prefix}{group}", ACLResourcePatternType.PREFIXED)
        )
    return acls


def _admin(config: ClientConfig) -> KafkaAdminClient:
    return AdminClient(**config, client_id="ido-provision", request_timeout_ms=30000)


def _upsert(admin: KafkaAdminClient, principal: str, password: str, mechanism: str) -> None:
    answer = admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(principal, mechanism, password, iterations=SCRAM_ITERATIONS)]
    )
    if answer.get(principal):
        raise RuntimeError(f"the broker refused the SCRAM credential of {principal}: {answer[principal]}")


@dataclass
class Provisioned:
    topics: list[str]
    users_made: list[str]
    acls: int


def provision_users(settings: Settings, principals: Iterable[str] = CLIENT_PRINCIPALS) -> list[str]:
    """A SCRAM user for each principal that has none on the broker (or whose password file is new)."""
    wanted = list(principals)
    admin = _admin(client_config(settings, ADMIN))
    try:
        described = admin.describe_user_scram_credentials(wanted)
        made: list[str] = []
        for principal in wanted:
            password, new_file = ensure_password(settings.kafka_credentials_dir, principal)
            known = described.get(principal) or {}
            on_broker = not known.get("error") and bool(known.get("credential_infos"))
            if new_file or not on_broker:
                _upsert(admin, principal, password, settings.kafka_sasl_mechanism)
                made.append(principal)
        return made
    finally:
        admin.close()


def provision_prefix(settings: Settings, prefix: str | None = None, topics: Iterable[TopicSpec] = ALL_TOPICS,
                     admin: KafkaAdminClient | None = None) -> tuple[list[str], int]:
    """The topics of one prefix and every principal's ACLs on them (``admin``: an ido-admin client to reuse)."""
    prefix = settings.topic_prefix if prefix is None else prefix
    specs = list(topics)
    own = admin is None
    client = _admin(client_config(settings, ADMIN)) if admin is None else admin
    try:
        create_topics(client, specs, prefix, settings.kafka_topic_replication)
        acls = acls_for_prefix(prefix)
        answer = client.create_acls(acls)
        if answer["failed"]:
            raise RuntimeError(f"the broker refused {len(answer['failed'])} ACLs: {answer['failed'][0]}")
        _wait_until_enforced(client, acls[-1])
    finally:
        if own:
            client.close()
    return [f"{prefix}{spec.name}" for spec in specs], len(acls)


def _wait_until_enforced(admin: KafkaAdminClient, last: ACL, timeout_s: float = 15.0) -> None:
    """Waits until the broker's authorizer holds the last ACL of a batch (so all of it: the metadata log is
    replayed in order). CreateAcls answers once the controller committed them; the authorizer applies them
    a moment later, and a client that starts at once would be refused."""
    wanted = ACLFilter(
        principal=last.principal,
        host=last.host,
        operation=last.operation,
        permission_type=last.permission_type,
        resource_pattern=ResourcePatternFilter(
            last.resource_pattern.resource_type, last.resource_pattern.resource_name, last.resource_pattern.pattern_type
        ),
    )
    _poll_until(
        lambda: bool(admin.describe_acls(wanted)[0]),
        time.monotonic() + timeout_s,
        f"the broker does not enforce the new ACLs after {timeout_s:.0f} s",
    )


def _poll_until(done: Callable[[], bool], deadline: float, failure: str) -> None:
    """Asks ``done`` every 50 ms until it holds; ``RuntimeError(failure)`` once ``deadline`` (monotonic) passed."""
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(failure)
        time.sleep(0.05)


LOGIN_TAKEN_WITHIN_S = 15.0
"""How long every broker may take to apply a changed password before the rotation is called failed."""


def wait_until_logins_take(
    admin: KafkaAdminClient, login: ClientConfig, timeout_s: float = LOGIN_TAKEN_WITHIN_S
) -> None:
    """Waits until every broker of the cluster logs ``login`` in: its principal's changed password is applied
    there, so the old one is refused (a SCRAM user has one credential per mechanism). AlterUserScramCredentials
    answers once the controller committed the change, and each broker applies it a moment later, as with ACLs
    (``_wait_until_enforced``): a rotation that returned at once left the old password working for that moment
    (tests/foundation/test_kafka_security.py logged in with it once, under load)."""
    deadline = time.monotonic() + timeout_s
    for broker in admin.describe_cluster()["brokers"]:
        address = f"{broker['host']}:{broker['port']}"
        _poll_until(
            functools.partial(_logs_in, {**login, "bootstrap_servers": address}),
            deadline,
            f"broker {address} does not log {login.get('sasl_plain_username')} in with the new password "
            f"after {timeout_s:.0f} s",
        )


def _logs_in(login: ClientConfig) -> bool:
    """Whether a client with ``login`` (one broker as its bootstrap) is let in."""
    try:
        AdminClient(**login, client_id="ido-login-check", bootstrap_timeout_ms=1000, request_timeout_ms=5000).close()
    except KafkaError:
        return False
    return True


def provision(settings: Settings, prefix: str | None = None) -> Provisioned:
    """Users, topics and ACLs: what `ido kafka provision` does (before the services start)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        ensure_topics(client_config(settings, ADMIN), ALL_TOPICS, settings.topic_prefix if prefix is None else prefix,
                      settings.kafka_topic_replication)
        return Provisioned([], [], 0)  # no authentication, no ACLs: topics only
    made = provision_users(settings)
    topics, acls = provision_prefix(settings, prefix)
    return Provisioned(topics, made, acls)


def rotate(settings: Settings, principal: str) -> None:
    """A new random password for ``principal``: set on the broker, then put in its file (atomically), once every
    broker logs the principal in with it (``wait_until_logins_take``; the file gets it also when that wait fails).

    Connections open at that moment stay logged in; every new login needs the new password, so a
    process picks it up when it builds its next client (the relay after a failed batch, the probes
    after a failure, every process at its restart).
    """
    if principal not in (ADMIN, *CLIENT_PRINCIPALS):
        raise CredentialError(f"unknown Kafka principal {principal!r}")
    admin_config = client_config(settings, ADMIN)
    admin = _admin(admin_config)
    pending = PendingPassword(settings.kafka_credentials_dir, principal)
    try:
        try:
            _upsert(admin, principal, pending.password, settings.kafka_sasl_mechanism)
        except BaseException:
            pending.discard()
            raise
        # The broker holds the new password from here on: the file gets it even when a broker is slow to apply it.
        try:
            wait_until_logins_take(admin, {**admin_config, "sasl_plain_username": principal,
                                           "sasl_plain_password": pending.password})
        finally:
            pending.commit()
    finally:
        admin.close()
    log.info("rotated the Kafka password of %s", principal)
