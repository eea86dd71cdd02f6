"""`ido audit verify`: every chain, in every event store and on every topic; a break is named."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer

from contracts.canonical import canonical_json, compute_hash
from services.audit.sources import topic_of_service
from services.audit.verify import verify
from services.common.cli import main
from services.common.config import Settings
from tests.audit.support import record_history, tamper
from tests.support.kafka_topics import admin_config, read_envelopes


def test_an_honest_history_verifies_on_every_side(live: Settings) -> None:
    services = record_history(live)
    services.publish()
    services.close()
    report = verify(live)
    assert report.ok, report.lines()
    assert set(report.checked) == {
        "store payments", "store bridge", "store ledger",
        *(f"topic {topic_of_service(live, s)}" for s in ("payments", "bridge", "ledger")),
    }
    assert report.checked["store ledger"]["events"] == report.checked[f"topic {live.topic('ido.expenditures.v1')}"][
        "events"
    ] == 4


def test_an_sql_update_of_a_stored_event_is_caught_and_named(live: Settings, env: dict[str, str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    services = record_history(live)
    services.publish()
    first = services.expenditures[0]
    stream = first["stream_id"]
    services.close()
    tamper(live, "ledger", stream, 1, '"amount_cents":1234567', '"amount_cents":1234500')

    report = verify(live)
    assert not report.ok
    assert len(report.breaks) == 1, report.lines()
    found = report.breaks[0]
    assert (found.side, found.stream_id, found.position) == ("store ledger", stream, 1)
    assert found.problem == "hash does not match the event's content"
    assert found.found == first_hash(live, stream)  # the stored hash, chained when the event was recorded
    assert found.expected != found.found and found.where.startswith("notification ")

    # the command line says so and exits non-zero
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "verify", "--stores-only"])
    assert exit_.value.code == 1


def first_hash(settings: Settings, stream_id: str) -> str:
    envelopes = read_envelopes(admin_config(settings), settings.topic("ido.expenditures.v1"), 4)
    return next(e["hash"] for _k, e in envelopes if e["stream_id"] == stream_id and e["stream_position"] == 1)


def test_a_forged_message_on_a_topic_is_caught_and_named(live: Settings) -> None:
    services = record_history(live)
    services.publish()
    services.close()
    topic = live.topic("ido.grants.v1")
    envelopes = [e for _k, e in read_envelopes(admin_config(live), topic, 8)]
    advance = next(e for e in envelopes if e["event_type"] == "AdvancePaid")
    # a forger who knows the hash rule: a valid message, chained to the same predecessor
    forged = {**advance, "payload": {**advance["payload"], "amount_cents": advance["payload"]["amount_cents"] * 2}}
    forged["hash"] = compute_hash(forged)
    # and one who does not: an event altered in place, its hash left as it was
    scheme = next(e for e in envelopes if e["event_type"] == "GrantFrameSet")
    altered = {**scheme, "payload": {**scheme["payload"], "frame_cents": 1}}
    producer = KafkaProducer(**admin_config(live), acks="all")
    producer.send(topic, key=advance["payload"]["municipality_code"].encode(), value=canonical_json(forged))
    producer.send(topic, key=b"scheme-2024", value=canonical_json(altered))
    producer.flush()
    producer.close()

    report = verify(live, stores=False)
    chain_breaks = [b for b in report.breaks if "provenance:" not in b.problem]
    assert {(b.side, b.stream_id) for b in chain_breaks} == {
        (f"topic {topic}", advance["stream_id"]), (f"topic {topic}", "scheme-2024")
    }, report.lines()
    # neither message carries the seal of the topic's owner (tests/audit/test_provenance.py)
    unsealed = [b for b in report.breaks if "provenance: unsigned" in b.problem]
    assert {b.problem.split()[1] for b in unsealed} == {forged["event_id"], altered["event_id"]}, report.lines()
    by_stream = {b.stream_id: b for b in chain_breaks}
    fork = by_stream[advance["stream_id"]]
    assert fork.position == advance["stream_position"]
    assert fork.problem == "two different events at one position"
    assert (fork.expected, fork.found) == (advance["hash"], forged["hash"])
    assert fork.where.count("partition") == 2  # where the true and the forged message are
    changed = by_stream["scheme-2024"]
    assert (changed.position, changed.problem) == (1, "hash does not match the event's content")
    assert changed.found == scheme["hash"] and changed.expected == compute_hash(altered)
    assert verify(live, topics=False).ok  # the stores were not touched
