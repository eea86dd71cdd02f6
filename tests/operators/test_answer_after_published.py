"""`IDO_ANSWER_AFTER_PUBLISHED_MS`: a write answered 2xx only once its events are on Kafka (issue 19, Must show 3).

Off by default (a write is answered once stored). On, a write whose relay does not publish within the wait
is answered 503 with Retry-After, its events stored; with the relay running it is answered 201 as before.
"""

from __future__ import annotations

import threading

from contracts.topics import GRANTS
from services.common.adapters.kafka import client_config, create_producer
from services.common.config import load_settings
from services.common.eventstore import build_application
from services.common.kafka_credentials import RELAYS
from services.common.relay import OutboxRelay
from services.common.signing import build_sealer
from services.payments.application.app import PaymentsApplication
from services.payments.demo import ANNEX_DEMO_FILE
from services.payments.entrypoints.definition import create_app
from tests.support.infra import KafkaInfo
from tests.support.tokens import TokenFactory


def test_a_write_is_answered_201_only_once_its_events_are_on_kafka(
    store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str
) -> None:
    settings = load_settings({**store_env, **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix,
                              "IDO_ANSWER_AFTER_PUBLISHED_MS": "1500"})
    assert settings.answer_after_published_ms == 1500
    ministry = TokenFactory(settings).headers("ministry")  # makes the token keys first
    application = build_application(PaymentsApplication, settings.eventsourcing_env("payments"))
    client = create_app(settings, application).test_client()

    # No relay runs: the frame is stored, but not on Kafka within the wait.
    frame = client.put("/v1/years/2024/frame", json={"frame_cents": 1_713_000_000, "decided_on": "2023-12-01"},
                       headers=ministry)
    assert frame.status_code == 503, frame.json
    assert frame.headers["Retry-After"] == "1"
    assert frame.json["message"] == (
        "recorded, but not yet confirmed on Kafka: retry with the same Idempotency-Key, or read it back"
    )
    assert application.recorder.max_notification_id() == 1
    # a read is never held
    assert client.get("/v1/years/2024/grants", headers=ministry).status_code == 200

    producer = create_producer(client_config(settings, RELAYS["payments"]), client_id="test-relay")
    relay = OutboxRelay(application, producer, settings.topic(GRANTS.name),
                        sealer=build_sealer(settings, "payments", GRANTS.name))
    stop = threading.Event()
    running = threading.Thread(target=relay.run_forever, args=(stop, 10), daemon=True)
    running.start()
    try:
        annex = client.post("/v1/years/2024/annex?awarded_on=2024-01-15", data=ANNEX_DEMO_FILE.read_bytes(),
                            headers={**ministry, "Content-Type": "text/csv"})
        assert annex.status_code == 201, annex.json
        # answered only once the relay had everything up to the store's head acknowledged
        assert relay.position() == application.recorder.max_notification_id() == 8  # the frame, 7 awards
    finally:
        stop.set()
        running.join(timeout=30)
        relay.close()
        application.close()
    assert not running.is_alive()
