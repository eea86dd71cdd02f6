"""The relay keeps one page in flight (services/common/relay.py): page N+1 is sent before page N's
acknowledgements are awaited, and the position still moves only past pages the broker acknowledged, in order.

The broker's side is a stand-in producer whose acknowledgements the test gives or refuses, message by message:
what is checked is the relay's bookkeeping (what it sends, when it records), which a real broker cannot be made
to fail at one chosen message. The relay against a real broker: test_relay_and_consumer.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError, NotEnoughReplicasError

from services.common.config import load_settings
from services.common.eventstore import build_application
from services.common.relay import OutboxRelay
from tests.support.toy import Counter, ToyApplication


class Ack:
    """A message's future as kafka-python's: done once the broker answered."""

    def __init__(self, producer: StandInProducer, number: int):
        self.producer, self.number = producer, number

    def succeeded(self) -> bool:
        self.producer.log.append(("awaited", self.number))
        return self.number in self.producer.acked

    def get(self, timeout: float | None = None) -> None:
        self.producer.log.append(("awaited", self.number))
        if self.number in self.producer.refused:
            raise NotEnoughReplicasError("refused")
        if self.number not in self.producer.acked:
            raise KafkaTimeoutError(f"Timeout after waiting for {timeout} secs.")


class StandInProducer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.acked: set[int] = set()
        self.refused: set[int] = set()
        self.log: list[tuple[str, int]] = []
        self.flushes = 0

    def send(self, topic: str, *, key: bytes, value: bytes, headers: list[Any]) -> Ack:
        self.log.append(("sent", len(self.sent)))
        self.sent.append(value)
        return Ack(self, len(self.sent) - 1)

    def ack_all(self) -> None:
        self.acked = set(range(len(self.sent))) - self.refused

    def flush(self, timeout: float | None = None) -> None:
        self.flushes += 1

    def close(self) -> None:
        """Nothing to close."""


@pytest.fixture
def relay(tmp_path: Path) -> Any:
    settings = load_settings({"IDO_DATA_DIR": str(tmp_path / "data"), "IDO_EVENT_STORE": "sqlite"})
    app = build_application(ToyApplication, settings.eventsourcing_env("toy"))
    counter = Counter.start("in-flight")
    for step in range(24):
        counter.add(step + 1)
    app.save(counter)  # 25 events: pages of 10, 10, 5
    producer = StandInProducer()
    relay = OutboxRelay(app, producer, "test.counters.v1", batch_size=5, page_batches=2)  # type: ignore[arg-type]
    yield relay, producer
    app.close()


def test_the_next_page_is_sent_before_the_last_one_is_awaited_and_recorded_only_once_acked(relay: Any) -> None:
    relay, producer = relay
    assert relay.run_once() == 10
    assert len(producer.sent) == 10 and relay.position() == 0  # sent, not yet acknowledged: not recorded
    assert not any(kind == "awaited" for kind, _n in producer.log)
    producer.ack_all()
    assert relay.run_once() == 10
    # page 2 (messages 10-19) went out before page 1's acknowledgements were looked at
    assert producer.log.index(("sent", 19)) < producer.log.index(("awaited", 0))
    assert relay.position() == 10 and producer.flushes == 0  # page 1 recorded; page 2 in flight
    producer.ack_all()
    assert relay.run_once() == 5
    assert relay.position() == 20
    producer.ack_all()
    assert relay.run_once() == 0  # nothing left: the last page awaited (flushed: no linger) and recorded
    assert relay.position() == 25 and producer.flushes == 1
    assert relay.run_once() == 0 and relay.position() == 25 and len(producer.sent) == 25


def test_a_page_never_acknowledged_is_sent_again_from_the_recorded_position(relay: Any) -> None:
    relay, producer = relay
    relay.run_once()
    with pytest.raises(KafkaTimeoutError):
        relay.run_once()  # page 2 sent, page 1 never acknowledged
    assert relay.position() == 0
    assert relay.run_once() == 10  # page 1 again, not page 3
    assert producer.sent[20:30] == producer.sent[0:10]


def test_a_refused_message_in_the_page_in_flight_forgets_the_page_sent_after_it(relay: Any) -> None:
    relay, producer = relay
    relay.run_once()
    producer.ack_all()
    relay.run_once()  # page 1 recorded, page 2 (messages 10-19) in flight
    assert relay.position() == 10
    producer.refused = {15}
    producer.ack_all()
    with pytest.raises(NotEnoughReplicasError):
        relay.run_once()  # page 3 (20-24) sent, then page 2 awaited: message 15 refused
    assert len(producer.sent) == 25
    assert relay.position() == 10  # neither page 2 nor page 3 (sent after it) is recorded
    producer.refused = set()
    sent_before = len(producer.sent)
    assert relay.run_once() == 10  # page 2 again from the recorded position, then page 3 again
    assert producer.sent[sent_before:] == producer.sent[10:20]
    producer.ack_all()
    while relay.run_once():
        producer.ack_all()
    assert relay.position() == 25
