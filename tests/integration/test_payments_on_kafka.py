"""The payments service's events reach ido.grants.v1 in order, valid, and hash-chained."""

from __future__ import annotations

from datetime import date

from contracts.topics import GRANTS
from services.common.config import load_settings
from services.common.eventstore import build_application
from services.payments.application.app import PaymentsApplication
from services.payments.demo import ANNEX_DEMO_FILE
from tests.support.infra import KafkaInfo
from tests.support.kafka_topics import (
    assert_chained_in_order,
    assert_valid_against_json_schema,
    publish_all,
    read_envelopes,
)

DEMO_CODES = {"GM0363", "GM0599", "GM0518", "GM0344", "GM0014", "GM0772"}


def test_annex_advances_settlement_and_reclaim_are_read_back_from_the_broker(
    store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str
) -> None:
    settings = load_settings(
        {**store_env, **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix}
    )
    app = build_application(PaymentsApplication, settings.eventsourcing_env("payments"))
    app.set_frame(2024, 1_713_000_000, date(2023, 12, 1))
    app.import_annex(2024, ANNEX_DEMO_FILE.read_bytes(), date(2024, 1, 15))
    grants = app.grants(2024)
    assert {g.municipality_code for g in grants} == DEMO_CODES
    for grant in grants:
        app.pay_advance(2024, grant.municipality_code, grant.amount_cents, date(2024, 1, 31))
    utrecht = app.grant(2024, "GM0344")
    spent = utrecht.amount_cents - 12_345_67
    app.settle(2024, "GM0344", reported_spending_cents=spent, settled_on=date(2025, 10, 1))
    app.issue_reclaim(2024, "GM0344", 12_345_67, date(2025, 10, 2))

    stored = len(app.recorder.select_notifications(start=1, limit=10_000))
    assert publish_all(settings, app, GRANTS) == stored
    messages = read_envelopes(kafka.client(), settings.topic(GRANTS.name), expected=stored)
    assert len(messages) == stored

    envelopes = [envelope for _, envelope in messages]
    for key, envelope in messages:
        assert_valid_against_json_schema(envelope)
        assert envelope["producer"] == "payments"
        if "municipality_code" in envelope["payload"]:
            assert key == envelope["payload"]["municipality_code"]
    # Each stream's events come in order with an unbroken chain (streams share a key, so a partition).
    assert_chained_in_order(envelopes)

    utrecht_types = [
        e["event_type"] for k, e in messages if k == "GM0344" and e["stream_id"] == utrecht.stream_id
    ]
    assert utrecht_types == ["GrantAwarded", "AdvancePaid", "GrantSettled", "ReclaimIssued"]
    settled = next(e for e in envelopes if e["event_type"] == "GrantSettled")
    assert settled["payload"]["settled_cents"] == spent
    reclaim = next(e for e in envelopes if e["event_type"] == "ReclaimIssued")
    assert reclaim["payload"]["amount_cents"] == 12_345_67
    awarded_total = sum(e["payload"]["amount_cents"] for e in envelopes if e["event_type"] == "GrantAwarded")
    paid_total = sum(e["payload"]["amount_cents"] for e in envelopes if e["event_type"] == "AdvancePaid")
    assert awarded_total == paid_total == sum(g.amount_cents for g in grants)
