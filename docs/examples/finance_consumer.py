"""A finance system's consumer of the IDO topics: kafka-python and the `contracts` package, nothing else.

    python docs/examples/finance_consumer.py --bootstrap 127.0.0.1:9092 --group my-finance-system \
        --keyset ido-keyset.json

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
from collections.abc import Callable, Sequence
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


def consume(
    bootstrap_servers: str,
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

    ``provenance``: the seal check, e.g. ``ProvenanceCheck(keyset_file=Path("ido-keyset.json"),
    topic_prefix=...)`` with the key set the ledger's operators publish."""
    books = books or Books()
    consumer = KafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_servers,
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
    parser.add_argument("--group", default="finance-example")
    parser.add_argument("--prefix", default="", help="topic prefix (IDO_TOPIC_PREFIX of the producers)")
    parser.add_argument("--keyset", type=Path, default=Path("var/keys/signing/keyset.json"),
                        help="the trusted public key set (`ido keys export`, or /.well-known/ido-keyset.json)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    topics = [f"{args.prefix}{spec.name}" for spec in (GRANTS, BRIDGE, EXPENDITURES)]

    def book(envelope: dict[str, Any]) -> None:
        payload = envelope["payload"]
        cents = next((v for k, v in payload.items() if k.endswith("_cents")), None)
        print(envelope["recorded_at"], envelope["event_type"], envelope["stream_id"], cents)

    provenance = ProvenanceCheck(keyset_file=args.keyset, topic_prefix=args.prefix)
    consume(args.bootstrap, topics, args.group, book, provenance=provenance)


if __name__ == "__main__":
    main()
