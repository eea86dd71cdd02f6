"""The bridge service's events reach ido.bridge.v1 in order, valid, and hash-chained."""

from __future__ import annotations

from datetime import date

from contracts.topics import BRIDGE
from services.bridge.entrypoints.demo import load_demo_data, read_demo_libraries
from services.common.config import load_settings
from services.common.definition import service_definition
from services.common.eventstore import build_application
from tests.support.infra import KafkaInfo
from tests.support.kafka_topics import (
    assert_chained_in_order,
    assert_valid_against_json_schema,
    publish_all,
    read_envelopes,
)


def test_demo_grants_payments_and_a_late_account_are_read_back_from_the_broker(
    store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str
) -> None:
    settings = load_settings(
        {**store_env, **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix}
    )
    app = build_application(service_definition("bridge").application_class, settings.eventsourcing_env("bridge"))
    load_demo_data(settings, app)
    libraries = read_demo_libraries()
    late_library = libraries[0]["library_id"]
    granted = app.library(late_library)
    app.submit_account(late_library, spent_cents=0, submitted_on=date(2023, 9, 2))

    stored = len(app.recorder.select_notifications(start=1, limit=10_000))
    assert publish_all(settings, app, BRIDGE) == stored
    messages = read_envelopes(kafka.client(), settings.topic(BRIDGE.name), expected=stored)
    assert len(messages) == stored
    envelopes = [envelope for _, envelope in messages]
    for key, envelope in messages:
        assert_valid_against_json_schema(envelope)
        assert envelope["producer"] == "bridge"
        if envelope["payload"].get("library_id"):
            assert key == envelope["payload"]["library_id"]
    assert_chained_in_order(envelopes)

    grants = [e for e in envelopes if e["event_type"] == "BridgeGrantSet"]
    assert {e["payload"]["library_id"] for e in grants} == {lib["library_id"] for lib in libraries}
    inhabitants = {lib["library_id"]: sum(a["inhabitants"] for a in lib["service_area"]) for lib in libraries}
    for grant in grants:
        assert grant["payload"]["amount_cents"] == 15 * inhabitants[grant["payload"]["library_id"]]
    account = next(e for e in envelopes if e["event_type"] == "BridgeAccountSubmitted")
    assert account["payload"]["library_id"] == late_library
    assert account["payload"]["late"] is True
    assert granted is not None
