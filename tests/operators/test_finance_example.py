"""The finance systems' example consumer (docs/examples/finance_consumer.py) works as documented:
it books every event once, in chain order, drops re-sent duplicates and sets aside a broken message
and one its topic's owner did not seal."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from kafka import KafkaProducer

from contracts.canonical import compute_hash
from contracts.provenance import ProvenanceCheck
from contracts.topics import GRANTS
from services.common.config import load_settings
from services.common.eventstore import build_application
from services.common.signing import seal_envelopes
from services.payments.application.app import PaymentsApplication
from services.payments.demo import ANNEX_DEMO_FILE
from tests.support.infra import KafkaInfo
from tests.support.kafka_topics import publish_all, read_envelopes

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "finance_consumer.py"


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("finance_consumer_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_the_example_consumer_books_each_event_once_in_chain_order(
    kafka: KafkaInfo, topic_prefix: str, tmp_path: Path
) -> None:
    settings = load_settings(
        {"IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys"), **kafka.settings_env(),
         "IDO_TOPIC_PREFIX": topic_prefix}
    )
    payments = build_application(PaymentsApplication, settings.eventsourcing_env("payments"))
    payments.set_frame(2024, 1_713_000_000, date(2023, 12, 1))
    payments.import_annex(2024, ANNEX_DEMO_FILE.read_bytes(), date(2024, 1, 15))
    published = publish_all(settings, payments, GRANTS)
    topic = settings.topic(GRANTS.name)
    envelopes = [e for _key, e in read_envelopes(kafka.client(), topic, published)]
    # A duplicate (as after a relay restart, sealed again), a message that breaks its contract, and a
    # valid, self-hashed event from a client that may write the topic but holds no signing key.
    [seal] = seal_envelopes(settings, GRANTS.name, [envelopes[-1]])
    unsealed = {**envelopes[-1], "event_id": str(uuid.uuid4())}
    unsealed["hash"] = compute_hash(unsealed)
    producer = KafkaProducer(**kafka.client())  # the test's set-up writes as the admin
    producer.send(topic, key=b"GM0363", value=_raw(envelopes[-1]), headers=seal)
    producer.send(topic, key=b"GM0363", value=b'{"event_type": "GrantAwarded"}')
    producer.send(topic, key=b"GM0363", value=_raw(unsealed))
    producer.flush()
    producer.close()

    module = example()
    booked: list[dict[str, Any]] = []
    # as documented: the finance principal's password file, SASL, a group named ido-finance-...
    password_file = Path(kafka.credentials_dir) / "ido-finance.password"
    connection = module.connection(kafka.bootstrap_servers, password_file, security_protocol="SASL_PLAINTEXT")
    provenance = ProvenanceCheck(keyset_file=settings.trusted_keyset_file, topic_prefix=topic_prefix)
    books = module.consume(connection, [topic], f"{topic_prefix}ido-finance-{uuid.uuid4().hex[:8]}", booked.append,
                           provenance=provenance, idle_ms=3000)
    assert len(booked) == published
    assert len({e["event_id"] for e in booked}) == published
    awarded = sum(e["payload"]["amount_cents"] for e in booked if e["event_type"] == "GrantAwarded")
    assert awarded == 2_430_000_00  # the demo annex
    assert [r[3].split(":")[0] for r in books.refused] == ["envelope", "provenance"], books.refused
    assert books.refused[1][3] == "provenance: unsigned (no ido-seal header)"

    # A stream whose next event does not follow its head is refused loudly.
    first = envelopes[0]
    books_now = module.Books(heads={first["stream_id"]: (5, "0" * 64)})
    with pytest.raises(module.ChainBroken):
        module.accept(books_now, {**first, "stream_position": 7})
    payments.close()


def _raw(envelope: dict[str, Any]) -> bytes:
    from contracts.canonical import canonical_json

    return canonical_json(envelope)
