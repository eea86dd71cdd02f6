"""A relay's producer renewed while the broker is away leaves no thread behind (``make soak`` found relay
threads and sockets growing after each loss of two brokers: kafka-python's ``close`` raised on its flush,
before it stopped its network thread)."""

from __future__ import annotations

import threading

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from services.common.adapters.kafka import client_config, create_producer
from services.common.kafka_credentials import ADMIN
from services.common.relay import close_producer
from tests.operators.conftest import OwnBroker
from tests.support.kafka_topics import admin_config
from tests.support.waiting import wait_until


def network_thread(client_id: str) -> threading.Thread | None:
    return next((t for t in threading.enumerate() if t.name == f"{client_id}-network-thread"), None)


def test_a_producer_closed_with_records_pending_and_no_broker_stops_its_network_thread(own_broker: OwnBroker) -> None:
    settings = own_broker.info.settings()
    admin = KafkaAdminClient(**admin_config(settings), client_id="test-admin")
    try:
        admin.create_topics([NewTopic("relay-close", 1, 1)])
    finally:
        admin.close()
    producer = create_producer(client_config(settings, ADMIN), client_id="relay-close-test")
    producer.send("relay-close", b"before").get(timeout=30)
    thread = network_thread("relay-close-test")
    assert thread is not None and thread.is_alive()

    own_broker.stop()
    producer.send("relay-close", b"pending")  # cannot be acknowledged: stays pending
    close_producer(producer, timeout_s=1, name="test")

    wait_until(lambda: not thread.is_alive(), 10, "the old producer's network thread to end")
