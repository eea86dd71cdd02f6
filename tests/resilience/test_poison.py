"""Poison messages on each topic go to the dead-letter topic and the projector carries on.

The real projector (`ido project`, a subprocess) with its view in a fresh PostgreSQL database reads
the three topics. On each topic, real envelopes (made by the services' own applications) are
interleaved, on the same key and so the same partition, with poison: not JSON, an empty value,
JSON that is no envelope, a payload that breaks its schema, an unknown event type, a forged hash,
an event of another topic, one from the wrong producer, and a sealed envelope whose text the view's
database cannot hold (a NUL character; since issue 16 the contract refuses it before the database).
Every good event must be applied once, every poison message must be on the dead-letter topic with its
reason, and the projector must still be running.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from contracts.canonical import canonical_json, compute_hash
from contracts.topics import BRIDGE, DEAD_LETTER, EXPENDITURES, GRANTS
from services.common.adapters.kafka import ClientConfig, client_config
from services.common.adapters.sql import create_sql_engine
from services.common.config import Settings, load_settings
from services.common.definition import service_definition
from services.common.eventstore import build_application
from services.common.kafka_credentials import ADMIN
from services.common.signing import seal_envelopes
from services.payments.demo import ANNEX_DEMO_FILE
from tests.resilience.figures import Figures
from tests.resilience.stack import applied_ids, expenditure, journal_event_counts, topic_records
from tests.resilience.support import Processes, StackEnv, wait_for
from tests.support.infra import KafkaInfo, PostgresInfo


def _envelopes(app: Any) -> list[tuple[str, dict[str, Any]]]:
    from services.common.domain.chained import recorded_envelope

    notifications = app.recorder.select_notifications(start=1, limit=10_000)
    return [recorded_envelope(app.mapper, n) for n in notifications]


def good_envelopes(tmp: Path) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """(key, envelope) per topic, made by the services' applications on SQLite stores."""
    stack = StackEnv(tmp, None, None)
    settings = stack.settings()
    apps = {
        s: build_application(service_definition(s).application_class, settings.eventsourcing_env(s))
        for s in ("payments", "bridge", "ledger")
    }
    payments = apps["payments"]
    payments.set_frame(2024, 1_713_000_000, date(2023, 12, 1))
    payments.import_annex(2024, ANNEX_DEMO_FILE.read_bytes(), date(2024, 1, 15))
    payments.pay_advance(2024, "GM0363", 1000, date(2024, 1, 31))
    bridge = apps["bridge"]
    bridge.set_frame()
    bridge.register_libraries([{"library_id": "NL-KVK-10000001", "name": "OBA",
                                "service_area": [{"municipality_code": "GM0363", "inhabitants": 1000}]}])
    bridge.compute_grants()
    client = service_definition("ledger").create_http_app(settings, apps["ledger"]).test_client()
    for n in range(4):
        posted = client.post("/v1/municipalities/GM0363/expenditures", json=expenditure(n, 1000 + n, "poison"),
                             headers=stack.headers("municipality", "GM0363"))
        assert posted.status_code == 201, posted.json
    return {
        GRANTS.name: _envelopes(payments),
        BRIDGE.name: _envelopes(bridge),
        EXPENDITURES.name: _envelopes(apps["ledger"]),
    }


def _rehash(envelope: dict[str, Any]) -> dict[str, Any]:
    envelope = dict(envelope)
    envelope["hash"] = compute_hash(envelope)
    return envelope


def poison_for(
    topic: str, good: list[tuple[str, dict[str, Any]]], other: dict[str, Any]
) -> list[tuple[str, bytes | None]]:
    """(kind, value) of every kind of poison, built from the topic's own last good envelope."""
    last = good[-1][1]
    schema_broken = copy.deepcopy(last)
    key = next(k for k, v in schema_broken["payload"].items() if k.endswith("_cents"))
    schema_broken["payload"][key] = "7.00"
    forged = copy.deepcopy(last)
    forged["payload"][key] = 999_999
    # a new event id: a copy under the genuine id is the case of the last test of this file
    wrong_producer = _rehash({**last, "producer": "someone-else", "event_id": str(uuid.uuid4())})
    return [
        ("not JSON", b"\xff\xfe not json"),
        ("empty value", None),
        ("JSON, no envelope", b'{"hello": "world"}'),
        ("payload breaks its schema", canonical_json(_rehash(schema_broken))),
        ("unknown event type", canonical_json(_rehash({**last, "event_type": "NoSuchEvent"}))),
        ("forged hash", canonical_json(forged)),
        ("event of another topic", canonical_json(_rehash({**other, "event_id": str(uuid.uuid4())}))),
        ("wrong producer", canonical_json(wrong_producer)),
    ]


def nul_text(topic: str, good: list[tuple[str, dict[str, Any]]]) -> tuple[str, bytes] | None:
    """A valid envelope (schema and hash fine) whose text PostgreSQL cannot store."""
    for _key, envelope in good:
        payload = envelope["payload"]
        for text_field in ("description", "municipality_name", "name"):
            if isinstance(payload.get(text_field), str):
                changed = copy.deepcopy(envelope)
                changed["payload"][text_field] = payload[text_field] + "\x00"
                changed["event_id"] = "00000000-0000-4000-8000-" + envelope["event_id"][-12:]
                return text_field, canonical_json(_rehash(changed))
    return None


GENUINE = "text the view cannot hold"
"""A poison kind sealed by its service: before issue 16 only the view's database refused its NUL text; now
the contract's text rule (contracts/text.py) refuses it first, naming the field."""


def _publish(settings: Settings, plan: dict[str, list[tuple[str, str, bytes | None]]]) -> None:
    """Produces the plan as a test's set-up, as the admin (no relay may write forged messages); the good
    messages (and the valid event whose text the view cannot hold) sealed as their service's relay would,
    with the keys the projector of ``settings`` trusts; the poison without seals."""
    producer = KafkaProducer(**client_config(settings, ADMIN), acks="all")
    try:
        for topic, messages in plan.items():
            good = [i for i, (_key, kind, _value) in enumerate(messages) if kind == "good" or kind.startswith(GENUINE)]
            seals = dict(zip(good, seal_envelopes(settings, topic, [json.loads(messages[i][2] or b"") for i in good]),
                             strict=True))
            for index, (key, _kind, value) in enumerate(messages):
                producer.send(f"{settings.topic_prefix}{topic}", key=key.encode(), value=value,
                              headers=seals.get(index, []))
        producer.flush(timeout=30)
    finally:
        producer.close()


def run_poison(
    procs: Processes, database: PostgresInfo, kafka: KafkaInfo, tmp_path: Path, *, with_nul: bool
) -> tuple[dict[str, Any], StackEnv]:
    goods = good_envelopes(tmp_path / "makers")
    stack = StackEnv(tmp_path / "stack", kafka, database)
    env = stack.env()
    settings = load_settings(env)
    others = {GRANTS.name: goods[EXPENDITURES.name][0][1], BRIDGE.name: goods[GRANTS.name][0][1],
              EXPENDITURES.name: goods[BRIDGE.name][0][1]}
    plan: dict[str, list[tuple[str, str, bytes | None]]] = {}
    poison_kinds: list[str] = []
    good_ids: set[str] = set()
    for topic, good in goods.items():
        messages: list[tuple[str, str, bytes | None]] = []
        poisons = poison_for(topic, good, others[topic])
        if with_nul:
            nul = nul_text(topic, good)
            if nul is not None:
                poisons.append((f"{GENUINE} ({nul[0]} with NUL)", nul[1]))
        # the first half of the good events, then every poison, then the rest: later events must still apply
        half = len(good) // 2
        for key, envelope in good[:half]:
            messages.append((key, "good", canonical_json(envelope)))
        main_key = good[-1][0]
        for kind, value in poisons:
            messages.append((main_key, kind, value))
            poison_kinds.append(f"{topic}: {kind}")
        for key, envelope in good[half:]:
            messages.append((key, "good", canonical_json(envelope)))
        good_ids.update(e["event_id"] for _k, e in good)
        plan[topic] = messages
    _publish(settings, plan)
    projector = procs.projector(env)
    view = create_sql_engine(settings.view_db_url)

    def settled() -> bool:
        if not projector.alive():
            return True
        try:
            applied = applied_ids(view)
        except Exception:  # noqa: BLE001 - tables not created yet
            return False
        return all(applied[i] for i in good_ids)

    wait_for(settled, 90, "the projector to apply every good event")
    dead = wait_for(
        lambda: (found := topic_envelopes_raw(kafka.client(), settings.topic(DEAD_LETTER.name)))
        and len(found) >= len(poison_kinds) and found or (not projector.alive() and [None]),
        60, "every poison message on the dead-letter topic",
    )
    result = {
        "alive": projector.alive(),
        "applied": applied_ids(view),
        "journal": journal_event_counts(view),
        "last_ids": [good[-1][1]["event_id"] for good in goods.values()],
        "good_ids": good_ids,
        "poison_kinds": poison_kinds,
        "dead": [d for d in dead if d is not None],
        "log": projector.log_text(),
    }
    view.dispose()
    return result, stack


def topic_envelopes_raw(kafka_config: ClientConfig, topic: str) -> list[dict[str, Any]]:
    records, _at_end = topic_records(kafka_config, topic, timeout_s=20)
    return [{"value": m.value, "headers": {k: v.decode() for k, v in m.headers}} for m in records]


def test_poison_on_every_topic_is_dead_lettered_and_the_projector_carries_on(
    procs: Processes, database: PostgresInfo, kafka: KafkaInfo, tmp_path: Path, figures: Figures
) -> None:
    result, _stack = run_poison(procs, database, kafka, tmp_path, with_nul=False)
    figures.add_inputs("poison message", len(result["poison_kinds"]))
    assert result["alive"], f"the projector died:\n{result['log'][-4000:]}"
    applied = result["applied"]
    assert all(applied[i] == 1 for i in result["good_ids"]), "a good event was not applied exactly once"
    assert set(applied) == result["good_ids"], "something other than the good events was applied"
    assert all(result["journal"][i] == 1 for i in result["last_ids"]), "the last good event of a topic is missing"
    dead = result["dead"]
    assert len(dead) == len(result["poison_kinds"]), [d["headers"].get("reason") for d in dead]
    by_topic: dict[str, list[str]] = {}
    for message in dead:
        by_topic.setdefault(message["headers"]["original_topic"], []).append(message["headers"]["reason"])
    assert len(by_topic) == 3, by_topic
    for topic, reasons in by_topic.items():
        assert len(reasons) == 8, (topic, reasons)
        assert all(reason for reason in reasons)
    reasons = [json.dumps(d["headers"]) for d in dead]
    for expected in ("value: not UTF-8 JSON", "value: empty message", "envelope:", "payload.",
                     "event_type: unknown type", "hash: does not match"):
        assert sum(expected in r for r in reasons) == 3, (expected, reasons)
    # an event of another topic and one from the wrong producer carry no seal of the topic's owner
    # (the projection's own "belongs on" / "must come from" rules stand behind that check)
    assert sum("provenance: unsigned" in r for r in reasons) == 6, reasons
    figures.add_events("poison", expected=len(result["good_ids"]), lost=0, doubled=0)
    assert "Traceback" not in result["log"], result["log"][-4000:]


def test_a_valid_event_whose_text_the_view_cannot_hold_is_dead_lettered(
    procs: Processes, database: PostgresInfo, kafka: KafkaInfo, tmp_path: Path, figures: Figures
) -> None:
    result, stack = run_poison(procs, database, kafka, tmp_path, with_nul=True)
    # The NUL message was built and sent, one per topic: each topic's good events have a text field.
    nul_kinds = sorted(k for k in result["poison_kinds"] if GENUINE in k)
    assert nul_kinds == sorted([
        f"{GRANTS.name}: {GENUINE} (municipality_name with NUL)", f"{BRIDGE.name}: {GENUINE} (name with NUL)",
        f"{EXPENDITURES.name}: {GENUINE} (description with NUL)",
    ]), result["poison_kinds"]
    figures.add_inputs("poison message (NUL text)", len(nul_kinds))
    assert result["alive"], f"the projector died:\n{result['log'][-2000:]}"
    assert all(result["applied"][i] == 1 for i in result["good_ids"])
    assert len(result["dead"]) == len(result["poison_kinds"])
    # ... and each is on the dead-letter topic, refused for its text (not applied), its NUL kept as sent
    with_nul = {
        d["headers"]["original_topic"]: (json.loads(d["value"])["event_id"], d["headers"]["reason"])
        for d in result["dead"] if d["value"] is not None and b"\\u0000" in d["value"]  # the empty poison has none
    }
    assert {t.removeprefix(stack.topic_prefix) for t in with_nul} == {GRANTS.name, BRIDGE.name, EXPENDITURES.name}
    for event_id, reason in with_nul.values():
        assert event_id.startswith("00000000-0000-4000-8000-") and event_id not in result["applied"], event_id
        assert "control characters" in reason, reason



def test_a_refused_copy_on_the_wrong_topic_does_not_hide_the_genuine_event(
    procs: Processes, database: PostgresInfo, kafka: KafkaInfo, tmp_path: Path, figures: Figures
) -> None:
    goods = good_envelopes(tmp_path / "makers")
    stack = StackEnv(tmp_path / "stack", kafka, database)
    env = stack.env()
    settings = load_settings(env)
    key, advance = goods[GRANTS.name][-1]
    view = create_sql_engine(settings.view_db_url)
    projector = procs.projector(env)
    # first a copy on the expenditures topic (refused: it belongs on ido.grants.v1) ...
    _publish(settings, {EXPENDITURES.name: [(key, "copy on the wrong topic", canonical_json(advance))]})
    wait_for(lambda: topic_envelopes_raw(kafka.client(), settings.topic(DEAD_LETTER.name)), 60,
             "the copy to be dead-lettered")
    # ... then the genuine history on its own topic
    _publish(settings, {GRANTS.name: [(k, "good", canonical_json(e)) for k, e in goods[GRANTS.name]]})
    figures.add_inputs("poison message", 1)
    try:
        wait_for(lambda: journal_event_counts(view)[advance["event_id"]] == 1, 15,
                 "the genuine advance to reach the balances' journal")
    finally:
        view.dispose()
    assert projector.alive()


def test_a_refusal_of_nul_text_puts_no_sql_and_no_event_text_in_logs_or_headers(
    procs: Processes, database: PostgresInfo, kafka: KafkaInfo, tmp_path: Path
) -> None:
    result, stack = run_poison(procs, database, kafka, tmp_path, with_nul=True)
    headers = json.dumps([d["headers"] for d in result["dead"]])
    for leak in ("[SQL:", "[parameters:", "OBA\\\\x00"):
        assert leak not in result["log"], f"{leak!r} in the projector's log"
        assert leak not in headers, f"{leak!r} in a dead-letter header"
    # refused by the contract's text rule, naming the field, before the database sees it (issue 16)
    assert any("control characters" in d["headers"].get("reason", "") for d in result["dead"]), headers
    assert not any("DataError" in d["headers"].get("reason", "") for d in result["dead"]), headers
