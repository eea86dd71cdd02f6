"""A finance system's consumer of the IDO topics: kafka-python and the `contracts` package, nothing else.

    python docs/examples/finance_consumer.py --bootstrap 127.0.0.1:9092 \
        --password-file var/keys/kafka/ido-finance.password --group ido-finance-my-system \
        --keyset ido-keyset.json

The broker takes SASL logins (SCRAM-SHA-512): the finance principal ``ido-finance`` may read the three
topics and use consumer groups whose names start with ``ido-finance`` (after the topic prefix, if any);
it can write nothing. Locally (`make run`) the listener is SASL_PLAINTEXT; in production it is SASL_SSL.

Each message is validated against its contract (envelope, payload schema, hash), its seal is checked
against the trusted key set (signed by the topic's owning service, and covering this event: see
docs/finance-systems.md), it is dropped when it is a re-sent duplicate (same ``event_id``), checked
against its stream's hash chain, handed to ``book()``, and only then is the offset committed.
A real system keeps ``seen`` and ``heads`` in its own database, in the same transaction as the
booking (see docs/finance-systems.md).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer

from contracts import BRIDGE, EXPENDITURES, GENESIS_HASH, GRANTS, ContractViolation, parse_message
from contracts.provenance import ProvenanceCheck

log = logging.getLogger("finance-consumer")


class ChainBroken(Exception):
    """A stream's events arrived out of order or altered: stop and ask, never book around it."""


@dataclass
class Books:
    seen: set[str] = field(default_factory=set)
    """Event ids already booked (drop re-sent duplicates)."""
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Per stream: the last booked position and its hash."""
    refused: list[tuple[str, int, int, str]] = field(default_factory=list)
    """(topic, partition, offset, reason) of messages that broke their contract."""


def accept(books: Books, envelope: dict[str, Any]) -> bool:
    """True when the event is new and extends its stream's chain; False for a duplicate."""
    if envelope["event_id"] in books.seen:
        return False
    position, head = books.heads.get(envelope["stream_id"], (0, GENESIS_HASH))
    if envelope["stream_position"] <= position:
        return False  # re-sent after a relay restart, booked before
    if envelope["stream_position"] != position + 1 or envelope["prev_hash"] != head:
        raise ChainBroken(
            f"{envelope['stream_id']}: expected position {position + 1} after hash {head[:12]}..., "
            f"got {envelope['stream_position']} after {envelope['prev_hash'][:12]}..."
        )
    return True


def connection(
    bootstrap_servers: str,
    password_file: str | Path,
    username: str = "ido-finance",
    security_protocol: str = "SASL_SSL",
    sasl_mechanism: str = "SCRAM-SHA-512",
    ssl_cafile: str | None = None,
) -> dict[str, Any]:
    """kafka-python's connection settings: the broker and the finance principal's SASL login.

    The password is read from its file (mode 0600, never in code or on a command line) each time, so
    after the ledger's operators rotate it (`ido kafka rotate ido-finance`) the next consumer logs in
    with the new one.
    """
    settings: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "security_protocol": security_protocol,
        "sasl_mechanism": sasl_mechanism,
        "sasl_plain_username": username,
        "sasl_plain_password": Path(password_file).read_text(encoding="ascii").strip(),
    }
    if ssl_cafile:
        settings["ssl_cafile"] = ssl_cafile
    return settings


def consume(
    kafka: Mapping[str, Any],
    topics: Sequence[str],
    group_id: str,
    book: Callable[[dict[str, Any]], None],
    *,
    provenance: ProvenanceCheck,
    books: Books | None = None,
    stop_after: int | None = None,
    idle_ms: int = 10_000,
) -> Books:
    """Reads the topics until ``stop_after`` events were booked or nothing came for ``idle_ms``.

    ``kafka``: the connection settings (``connection(...)``); ``group_id`` must start with ``ido-finance``
    (the finance principal's ACL), e.g. ``ido-finance-gemeente-x``.
    ``provenance``: the seal check, e.g. ``ProvenanceCheck(keyset_file=Path("ido-keyset.json"),
    topic_prefix=...)`` with the key set the ledger's operators publish."""
    books = books or Books()
    consumer = KafkaConsumer(
        *topics,
        **kafka,
        group_id=group_id,
        enable_auto_commit=False,  # commit only what was booked
        auto_offset_reset="earliest",  # a new consumer starts at the beginning: history is kept forever
        consumer_timeout_ms=idle_ms,
    )
    booked = 0
    try:
        for message in consumer:
            try:
                envelope = parse_message(message.value)
                provenance.check(message.topic, envelope, message.headers)
            except ContractViolation as violation:
                books.refused.append((message.topic, message.partition, message.offset, violation.reason))
                log.warning("refused %s[%s]@%s: %s", message.topic, message.partition, message.offset,
                            violation.reason)
            else:
                if accept(books, envelope):
                    book(envelope)
                    books.seen.add(envelope["event_id"])
                    books.heads[envelope["stream_id"]] = (envelope["stream_position"], envelope["hash"])
                    booked += 1
            consumer.commit()
            if stop_after is not None and booked >= stop_after:
                break
    finally:
        consumer.close()
    return books


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--username", default="ido-finance")
    parser.add_argument("--password-file", default="var/keys/kafka/ido-finance.password",
                        help="the principal's password, one line (make run: var/keys/kafka/ido-finance.password)")
    parser.add_argument("--security-protocol", default="SASL_PLAINTEXT", choices=["SASL_PLAINTEXT", "SASL_SSL"],
                        help="SASL_PLAINTEXT for `make run`; SASL_SSL in production")
    parser.add_argument("--ssl-cafile", help="CA bundle of the broker's certificate (SASL_SSL)")
    parser.add_argument("--group", default="ido-finance-example", help="must start with ido-finance (after --prefix)")
    parser.add_argument("--prefix", default="", help="topic prefix (IDO_TOPIC_PREFIX of the producers)")
    parser.add_argument("--keyset", type=Path, default=Path("var/keys/signing/keyset.json"),
                        help="the trusted public key set (`ido keys export`, or /.well-known/ido-keyset.json)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    topics = [f"{args.prefix}{spec.name}" for spec in (GRANTS, BRIDGE, EXPENDITURES)]
    kafka = connection(args.bootstrap, args.password_file, args.username, args.security_protocol,
                       ssl_cafile=args.ssl_cafile)

    def book(envelope: dict[str, Any]) -> None:
        payload = envelope["payload"]
        cents = next((v for k, v in payload.items() if k.endswith("_cents")), None)
        print(envelope["recorded_at"], envelope["event_type"], envelope["stream_id"], cents)

    provenance = ProvenanceCheck(keyset_file=args.keyset, topic_prefix=args.prefix)
    consume(kafka, topics, f"{args.prefix}{args.group}", book, provenance=provenance)


if __name__ == "__main__":
    main()
