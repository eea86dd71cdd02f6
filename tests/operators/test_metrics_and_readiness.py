"""`/metrics` moves with a small load, `/readyz` follows the relay's lag and the broker: unready when
events wait beyond IDO_READY_MAX_RELAY_LAG, ready once relayed, unready when the broker stops."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from flask.testing import FlaskClient
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from contracts.topics import EXPENDITURES, GRANTS
from services.common.config import load_settings
from services.common.readiness import KafkaProbe
from services.ledger.entrypoints.definition import create_app as create_ledger_app
from services.ledger.entrypoints.projector import build_runner
from services.payments.demo import ANNEX_DEMO_FILE
from services.payments.entrypoints.definition import create_app as create_payments_app
from tests.operators.conftest import OwnBroker, expenditure
from tests.support.infra import KafkaInfo
from tests.support.kafka_topics import publish_all
from tests.support.tokens import TokenFactory
from tests.support.waiting import ManualClock


def scrape(client: FlaskClient) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Metric sample name -> [(labels, value)], from an unauthenticated GET /metrics."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/plain"
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def value(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(v for found, v in metrics.get(name, []) if all(found.get(k) == w for k, w in labels.items()))


def series(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str) -> Iterable[tuple[dict[str, str], float]]:
    return metrics.get(name, [])


def readyz(client: FlaskClient) -> tuple[int, dict[str, Any]]:
    response = client.get("/readyz")
    return response.status_code, response.get_json()


def test_payments_metrics_move_and_readiness_follows_relay_lag_and_broker(
    store_env: dict[str, str], own_broker: OwnBroker
) -> None:
    settings = load_settings(
        {
            **store_env,
            **own_broker.info.settings_env(),
            "IDO_READY_MAX_RELAY_LAG": "3",
            "IDO_READY_TIMEOUT_MS": "1500",
        }
    )
    tokens = TokenFactory(settings)
    app = create_payments_app(settings)
    client = app.test_client()
    ministry = tokens.headers("ministry")
    try:
        status, body = readyz(client)
        assert status == 200, body
        assert body["checks"]["relay"] == {
            "ok": True, "topic": GRANTS.name, "lag": 0, "max_lag": 3, "position": 0, "head": 0,
        }

        # A small load: the frame, the annex (six awards), an advance, and some reads.
        frame = client.put("/v1/years/2024/frame", json={"frame_cents": 1_713_000_000, "decided_on": "2023-12-01"},
                           headers=ministry)
        assert frame.status_code == 201, frame.json
        annex = client.post("/v1/years/2024/annex?awarded_on=2024-01-15", data=ANNEX_DEMO_FILE.read_bytes(),
                            headers={**ministry, "Content-Type": "text/csv"})
        assert annex.status_code == 201, annex.json
        advance = client.post("/v1/years/2024/grants/GM0363/advances",
                              json={"amount_cents": 725_000_00, "paid_on": "2024-01-31"}, headers=ministry)
        assert advance.status_code == 201, advance.json
        for _ in range(3):
            assert client.get("/v1/years/2024/grants", headers=ministry).status_code == 200
        assert client.get("/v1/years/2024/grants").status_code == 401

        metrics = scrape(client)
        stored = value(metrics, "ido_events_stored", service="payments")
        assert stored >= 8  # the frame, six awards, an advance
        assert value(metrics, "ido_events_recorded_total", service="payments") == stored
        assert value(metrics, "ido_events_recorded_total", event_type="GrantAwarded") == 6
        assert value(metrics, "ido_relay_lag_events", topic=GRANTS.name) == stored  # no relay ran yet
        assert value(metrics, "ido_relay_position", topic=GRANTS.name) == 0
        assert value(metrics, "ido_http_requests_total", route="/v1/years/<int:year>/frame", method="PUT",
                     status="201") == 1
        assert value(metrics, "ido_http_requests_total", route="/v1/years/<int:year>/annex", status="201") == 1
        assert value(metrics, "ido_http_requests_total", route="/v1/years/<int:year>/grants", method="GET",
                     status="200") == 3
        assert value(metrics, "ido_http_requests_total", route="/v1/years/<int:year>/grants", method="GET",
                     status="401") == 1
        assert value(metrics, "ido_http_request_duration_seconds_count", route="/v1/years/<int:year>/grants",
                     method="GET") == 4
        assert value(metrics, "ido_broker_up", service="payments") == 1
        assert value(metrics, "ido_event_store_up", service="payments") == 1

        # More events waiting than IDO_READY_MAX_RELAY_LAG allows: unready, and it says why.
        status, body = readyz(client)
        assert status == 503, body
        assert body["status"] == "unready"
        assert body["checks"]["relay"]["ok"] is False and body["checks"]["relay"]["lag"] == stored
        assert body["checks"]["broker"]["ok"] is True and body["checks"]["event_store"]["ok"] is True

        # The relay (another process in production; here in-process) publishes them: ready again.
        published = publish_all(settings, app.extensions["payments.application"], GRANTS)
        assert published == stored
        status, body = readyz(client)
        assert status == 200, body
        assert body["checks"]["relay"]["lag"] == 0 and body["checks"]["relay"]["position"] == stored
        metrics = scrape(client)
        assert value(metrics, "ido_relay_lag_events", topic=GRANTS.name) == 0
        assert value(metrics, "ido_relay_position", topic=GRANTS.name) == stored
        readyz_count = value(metrics, "ido_http_requests_total", route="/readyz")
        assert readyz_count == 3

        # The broker stops: unready within the probe's timeout; metrics still answer.
        own_broker.stop()
        started = time.monotonic()
        status, body = readyz(client)
        assert status == 503, body
        assert body["checks"]["broker"]["ok"] is False and body["checks"]["broker"]["error"]
        assert body["checks"]["event_store"]["ok"] is True
        assert time.monotonic() - started < 10
        metrics = scrape(client)
        assert value(metrics, "ido_broker_up", service="payments") == 0
        assert value(metrics, "ido_http_requests_total", route="/readyz", status="503") == 2
    finally:
        app.extensions["ido.operations"].close()
        app.extensions["payments.application"].close()


def test_ledger_metrics_show_projector_lag_per_partition_and_dead_letters(
    store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str
) -> None:
    settings = load_settings(  # no awards in this test: 2024 is opened before its award (issue 15)
        {**store_env, **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix, "IDO_YEARS_OPEN_BEFORE_AWARD": "2024"}
    )
    tokens = TokenFactory(settings)
    app = create_ledger_app(settings)
    client = app.test_client()
    expenditures_topic = settings.topic(EXPENDITURES.name)
    dead_letter_topic = settings.topic("ido.deadletter.v1")
    runner = None
    try:
        for code, amount in (("GM0363", 1000), ("GM0363", 2000), ("GM0599", 3000)):
            posted = client.post(
                f"/v1/municipalities/{code}/expenditures",
                json=expenditure("promotion", amount, "2024-03-01", ("PRINT-1", "Printer"), f"R{amount}"),
                headers=tokens.headers("municipality", code),
            )
            assert posted.status_code == 201, posted.json
        publish_all(settings, app.extensions["ledger"].application, EXPENDITURES)

        metrics = scrape(client)
        assert value(metrics, "ido_projector_lag_messages", topic=expenditures_topic) == 3
        assert value(metrics, "ido_relay_lag_events", topic=expenditures_topic) == 0
        assert value(metrics, "ido_dead_letter_messages") == 0  # no dead-letter topic yet

        runner = build_runner(settings)
        deadline = time.monotonic() + 60
        while value(scrape(client), "ido_projector_lag_messages") > 0 and time.monotonic() < deadline:
            runner.run_once(timeout_ms=300)
        metrics = scrape(client)
        lags = list(series(metrics, "ido_projector_lag_messages"))
        assert len(lags) == 9  # three topics of three partitions each, every one reported
        assert all(v == 0 for _labels, v in lags)
        assert value(metrics, "ido_projector_next_offset", topic=expenditures_topic) == 3

        # A message that breaks its contract goes to the dead-letter topic; the count shows it.
        producer = KafkaProducer(**kafka.client())  # a broken message, written as the admin
        producer.send(expenditures_topic, key=b"GM0363", value=b"{not json")
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 60
        while value(scrape(client), "ido_dead_letter_messages", topic=dead_letter_topic) < 1:
            assert time.monotonic() < deadline, "the refused message never reached the dead-letter topic"
            runner.run_once(timeout_ms=300)
        metrics = scrape(client)
        assert value(metrics, "ido_dead_letter_messages", topic=dead_letter_topic) == 1
        assert value(metrics, "ido_projector_lag_messages") == 0

        status, body = readyz(client)
        assert status == 200, body
        assert body["checks"]["projector"] == {"ok": True, "lag": 0, "informational": True}
        assert body["checks"]["view_store"] == {"ok": True}
    finally:
        if runner is not None:
            runner.close()
        app.extensions["ido.operations"].close()
        app.extensions["ledger"].application.close()


def test_a_down_broker_is_asked_at_most_once_per_timeout() -> None:
    from tests.operators.conftest import free_port

    nowhere = {"bootstrap_servers": f"127.0.0.1:{free_port()}"}  # nothing listens there
    clients_made: list[float] = []  # the probe reads its config for every admin client it makes

    def config() -> dict[str, str]:
        clients_made.append(clock.now_s)
        return nowhere

    clock = ManualClock()
    started_s = clock.now_s
    probe = KafkaProbe(config, timeout_ms=800, clock=clock)
    try:
        first = probe.check()
        assert not first.reachable and first.error
        assert clients_made == [started_s]
        clock.advance(0.7)
        again = probe.check()  # within the back-off: the same answer, the broker not asked
        assert (again.reachable, again.error) == (False, first.error)
        assert len(clients_made) == 1
        clock.advance(0.2)  # the back-off (0.8 s) is over: asked anew
        third = probe.check()
        assert not third.reachable and third.error
        assert clients_made == [started_s, clock.now_s]
    finally:
        probe.close()
