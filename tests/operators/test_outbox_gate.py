"""Issue 19: while a service's events stop reaching Kafka, its writes fail visibly.

The relay (another process in production; here run in-process by ``publish_all``) publishes from the
service's event store, its outbox. Once it has published nothing for ``IDO_OUTBOX_STALL_S`` while
events wait, every write answers 503 with Retry-After and stores nothing; reads go on; when the relay
moves again, writes are accepted again. The clock is the test's (``ManualClock``).
"""

from __future__ import annotations

from typing import Any

from contracts.topics import GRANTS
from services.common.config import load_settings
from services.common.http import OUTBOX_GATE_KEY
from services.common.outbox_gate import OutboxGate
from services.payments.demo import ANNEX_DEMO_FILE
from services.payments.entrypoints.definition import create_app as create_payments_app
from tests.support.infra import KafkaInfo
from tests.support.kafka_topics import publish_all
from tests.support.tokens import TokenFactory
from tests.support.waiting import ManualClock

ADVANCE = {"amount_cents": 100_000_00, "paid_on": "2024-01-31"}


def test_writes_answer_503_while_the_relay_is_stalled_and_are_accepted_once_it_moves(
    store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str
) -> None:
    settings = load_settings(
        {**store_env, **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix, "IDO_OUTBOX_STALL_S": "10"}
    )
    ministry = TokenFactory(settings).headers("ministry")  # makes the token keys the app reads
    app = create_payments_app(settings)
    application = app.extensions["payments.application"]
    gate: OutboxGate = app.extensions[OUTBOX_GATE_KEY]
    clock = ManualClock()
    gate.clock = clock
    client = app.test_client()
    try:
        frame = client.put("/v1/years/2024/frame", json={"frame_cents": 1_713_000_000, "decided_on": "2023-12-01"},
                           headers=ministry)
        assert frame.status_code == 201, frame.json
        publish_all(settings, application, GRANTS)  # the relay has published: the gate is armed
        annex = client.post("/v1/years/2024/annex?awarded_on=2024-01-15", data=ANNEX_DEMO_FILE.read_bytes(),
                            headers={**ministry, "Content-Type": "text/csv"})
        assert annex.status_code == 201, annex.json

        # Events wait and the relay does not move: the gate's first look after publishing sees that...
        clock.advance(5)
        first = client.post("/v1/years/2024/grants/GM0363/advances", json=ADVANCE, headers=ministry)
        assert first.status_code == 201, first.json
        clock.advance(9.5)  # ...and 9.5 s later it has not moved: accepted still
        second = client.post("/v1/years/2024/grants/GM0363/advances", json=ADVANCE, headers=ministry)
        assert second.status_code == 201, second.json
        clock.advance(1)
        head = application.recorder.max_notification_id()

        refused = client.post("/v1/years/2024/grants/GM0363/advances", json=ADVANCE,
                              headers={**ministry, "Idempotency-Key": "advance-2"})
        assert refused.status_code == 503, refused.json
        assert refused.headers["Retry-After"] == "5"
        body: dict[str, Any] = refused.get_json()
        assert body["status"] == "unavailable" and body["code"] == 503
        assert "have not reached Kafka for 10 s" in body["message"] and "nothing was stored" in body["message"]
        assert application.recorder.max_notification_id() == head  # nothing stored
        grant = client.get("/v1/years/2024/grants/GM0363", headers=ministry)
        assert grant.status_code == 200 and grant.json["paid_cents"] == 2 * ADVANCE["amount_cents"]  # reads go on

        # The relay publishes what waited: the next look (a second later) opens the gate.
        publish_all(settings, application, GRANTS)
        clock.advance(1)
        retried = client.post("/v1/years/2024/grants/GM0363/advances", json=ADVANCE,
                              headers={**ministry, "Idempotency-Key": "advance-2"})
        assert retried.status_code == 201, retried.json
        assert client.get("/v1/years/2024/grants/GM0363", headers=ministry).json["paid_cents"] == 3 * ADVANCE[
            "amount_cents"]
    finally:
        app.extensions["ido.operations"].close()
        application.close()


class Positions:
    def __init__(self, head: int, position: int):
        self.head_id, self.position_id, self.reads = head, position, 0

    def head(self) -> int:
        self.reads += 1
        return self.head_id

    def position(self) -> int:
        return self.position_id


def test_a_relay_that_never_published_is_not_a_stall() -> None:
    clock = ManualClock()
    gate = OutboxGate(Positions(head=40, position=0), stall_s=10, clock=clock)
    for _ in range(5):
        assert gate.refusal() is None
        clock.advance(60)


def test_a_relay_that_moves_slowly_is_not_a_stall_and_one_that_stops_is() -> None:
    clock = ManualClock()
    positions = Positions(head=100, position=10)
    gate = OutboxGate(positions, stall_s=10, clock=clock)
    for _ in range(30):  # behind all along, but moving every 5 s
        assert gate.refusal() is None
        positions.position_id += 1
        clock.advance(5)
    assert gate.refusal() is None  # it stops here
    clock.advance(9.5)
    assert gate.refusal() is None
    clock.advance(0.5)  # 10 s unmoved, but the last look was 0.5 s ago: it is looked at within a second
    assert gate.refusal() is None
    clock.advance(0.5)
    refusal = gate.refusal()
    assert refusal is not None and refusal.retry_after_s == 5
    positions.position_id = positions.head_id  # it caught up
    clock.advance(1)
    assert gate.refusal() is None


def test_the_positions_are_read_at_most_once_a_second() -> None:
    clock = ManualClock()
    positions = Positions(head=100, position=10)
    gate = OutboxGate(positions, stall_s=10, clock=clock)
    for _ in range(100):
        gate.refusal()
        clock.advance(0.05)
    assert positions.reads == 5


def test_a_stall_limit_of_zero_never_refuses() -> None:
    clock = ManualClock()
    gate = OutboxGate(Positions(head=100, position=10), stall_s=0, clock=clock)
    for _ in range(5):
        assert gate.refusal() is None
        clock.advance(3600)
