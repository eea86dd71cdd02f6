"""How the benchmark's data is made.

* Stored events (rows 1, 2, 7): ``fill_ledger_store`` saves ``Expenditure`` aggregates through the
  ledger's own eventsourcing Application, many aggregates per ``save`` (one transaction each), so
  they are real stored events with their hash chains, only written faster than over HTTP.
* Kafka topics (rows 3, 4, 6, 7): ``produce_dataset`` builds envelopes with
  ``services.common.domain.chained.build_envelope`` (valid contracts, valid hash chains) and sends
  them straight to the three topics: per municipality a ``GrantAwarded`` and an ``AdvancePaid`` on
  ``ido.grants.v1``, then ``ExpenditureRecorded`` events spread over the municipalities, every tenth
  followed later by its ``ExpenditureReversed`` on ``ido.expenditures.v1``. The number of balances
  is the number of municipalities (one grant year), whatever the history's length. Each message
  carries the seal its service's relay would give it (``services.common.signing.seal_envelopes``,
  keys in the bench's ``IDO_KEYS_DIR``), in relay-sized batches, so consumers prove and apply them.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from kafka import KafkaProducer

from contracts.canonical import GENESIS_HASH, canonical_json, format_utc
from contracts.topics import BRIDGE, EXPENDITURES, GRANTS
from services.common.adapters.kafka import ensure_topics
from services.common.config import load_settings
from services.common.domain.chained import build_envelope
from services.common.domain.event_ids import new_event_id
from services.common.signing import seal_envelopes
from services.ledger.domain.grant_years import GrantYear
from services.ledger.domain.model import Expenditure, expenditure_stream

YEAR = 2024
CATEGORIES = ("library_funding", "promotion", "network_orchestration")
LIBRARY = {"id": "NL-KVK-41215098", "name": "Bibliotheek (bench)"}
PRINTER = {"id": "PRINT-1", "name": "Drukkerij (bench)"}


def municipality_codes(count: int) -> list[str]:
    return [f"GM{i:04d}" for i in range(1, count + 1)]


def expenditure_body(index: int, category: str | None = None) -> dict[str, Any]:
    """The JSON body of one POST expenditure (as the HTTP API takes it)."""
    category = category or CATEGORIES[index % len(CATEGORIES)]
    day = date(YEAR, 1, 1) + timedelta(days=index % 360)
    return {
        "grant_year": YEAR,
        "category": category,
        "amount_cents": 1000 + index % 90_000,
        "booked_on": day.isoformat(),
        "counterparty": LIBRARY if category == "library_funding" else PRINTER,
        "description": "bench expenditure",
        "reference": f"B-{index}",
    }


def fill_ledger_store(
    app: Application, count: int, *, municipalities: int = 50, batch: int = 500, start: int = 0
) -> int:
    """Saves ``count`` ExpenditureRecorded events through the ledger's Application, ``batch`` per save."""
    codes = municipality_codes(municipalities)
    saved = 0
    while saved < count:
        size = min(batch, count - saved)
        aggregates = []
        for i in range(start + saved, start + saved + size):
            body = expenditure_body(i)
            aggregates.append(
                Expenditure.record(
                    expenditure_id=uuid.uuid4(),
                    municipality_code=codes[i % len(codes)],
                    grant_year=YEAR,
                    category=body["category"],
                    amount_cents=body["amount_cents"],
                    booked_on=date.fromisoformat(body["booked_on"]),
                    counterparty=body["counterparty"],
                    description=body["description"],
                    reference=body["reference"],
                    books=None,  # the bench's year is never closed
                    # filling a store, not deciding postings: the bench's year counts as opened before its award
                    grant=GrantYear(codes[i % len(codes)], YEAR, awarded=False, open_before_award=True),
                )
            )
        app.save(*aggregates)
        saved += size
    return saved


@dataclass(frozen=True)
class Message:
    topic: str  # without prefix
    key: str
    envelope: dict[str, Any]


def _envelope(
    event_type: str, producer: str, stream_id: str, position: int, prev_hash: str, payload: dict[str, Any], now: str
) -> dict[str, Any]:
    return build_envelope(
        event_id=new_event_id(),
        event_type=event_type,
        schema_version=1,
        stream_id=stream_id,
        stream_position=position,
        occurred_at=now,
        recorded_at=now,
        producer=producer,
        payload=payload,
        prev_hash=prev_hash,
    )


def dataset(count: int, municipalities: int = 50, seed: int = 7) -> Iterator[Message]:
    """Exactly ``count`` envelopes (see the module's docstring); ``municipalities`` balances."""
    rng = random.Random(seed)
    codes = municipality_codes(municipalities)
    now = format_utc(datetime.now(UTC))
    emitted = 0
    for code in codes:
        if emitted + 2 > count:
            break
        grant_id = f"grant-{YEAR}-{code}"
        amount = 20_000_000 + rng.randrange(10_000_000)
        awarded = _envelope(
            "GrantAwarded", GRANTS.producer, grant_id, 1, GENESIS_HASH,
            {
                "grant_id": grant_id, "year": YEAR, "municipality_code": code,
                "municipality_name": f"Gemeente {code}", "amount_cents": amount,
                "awarded_on": f"{YEAR}-01-15", "basis": "annex",
            },
            now,
        )
        paid = _envelope(
            "AdvancePaid", GRANTS.producer, grant_id, 2, awarded["hash"],
            {
                "grant_id": grant_id, "year": YEAR, "municipality_code": code,
                "amount_cents": amount, "paid_on": f"{YEAR}-01-31",
            },
            now,
        )
        yield Message(GRANTS.name, code, awarded)
        yield Message(GRANTS.name, code, paid)
        emitted += 2
    pending: list[tuple[dict[str, Any], str]] = []  # (recorded envelope, code) to reverse later
    index = 0
    while emitted < count:
        if pending and (index % 10 == 5 or len(pending) > 50):
            recorded, code = pending.pop(0)
            p = recorded["payload"]
            envelope = _envelope(
                "ExpenditureReversed", EXPENDITURES.producer, recorded["stream_id"], 2, recorded["hash"],
                {
                    "expenditure_id": p["expenditure_id"], "municipality_code": code, "grant_year": YEAR,
                    "reverses_event_id": recorded["event_id"], "amount_cents": p["amount_cents"],
                    "category": p["category"], "booked_on": p["booked_on"], "reason": "booked twice",
                },
                now,
            )
        else:
            code = codes[rng.randrange(len(codes))]
            body = expenditure_body(index)
            expenditure_id = str(uuid.uuid4())
            envelope = _envelope(
                "ExpenditureRecorded", EXPENDITURES.producer, expenditure_stream(expenditure_id), 1, GENESIS_HASH,
                {"expenditure_id": expenditure_id, "municipality_code": code, **body},
                now,
            )
            if index % 10 == 0:
                pending.append((envelope, code))
        index += 1
        yield Message(EXPENDITURES.name, code, envelope)
        emitted += 1


SEAL_BATCH = 500
"""Messages per seal, as the relay's default batch (IDO_RELAY_BATCH_SIZE)."""


def produce_dataset(
    kafka_config: Mapping[str, Any], prefix: str, count: int, municipalities: int = 50, *, keys_dir: Path
) -> dict[str, int]:
    """Sends ``dataset(count)`` to ``<prefix>ido.grants.v1`` etc., sealed with the services' keys in
    ``keys_dir`` (made when missing); returns messages per topic."""
    ensure_topics(kafka_config, [GRANTS, BRIDGE, EXPENDITURES], prefix)  # the admin's config: it creates topics
    settings = load_settings({"IDO_KEYS_DIR": str(keys_dir)})
    producer = KafkaProducer(
        **kafka_config, acks=1, linger_ms=20, batch_size=256 * 1024, client_id="bench-data"
    )
    counts = {GRANTS.name: 0, BRIDGE.name: 0, EXPENDITURES.name: 0}
    pending: dict[str, list[Message]] = {name: [] for name in counts}

    def send(topic: str) -> None:
        messages = pending[topic]
        seals = seal_envelopes(settings, topic, [m.envelope for m in messages], batch_size=SEAL_BATCH)
        for message, seal in zip(messages, seals, strict=True):
            producer.send(
                prefix + message.topic,
                key=message.key.encode(),
                value=canonical_json(message.envelope),
                headers=[
                    ("event_type", message.envelope["event_type"].encode()),
                    ("event_id", message.envelope["event_id"].encode()),
                    *seal,
                ],
            )
        counts[topic] += len(messages)
        pending[topic] = []

    try:
        for message in dataset(count, municipalities):
            pending[message.topic].append(message)
            if len(pending[message.topic]) >= SEAL_BATCH:
                send(message.topic)
        for topic in pending:
            if pending[topic]:
                send(topic)
        producer.flush()
    finally:
        producer.close()
    return counts
