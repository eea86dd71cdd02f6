"""A Kafka admin client that cannot reach its broker leaves no thread behind (``AdminClient``).

kafka-python 3.x starts the IO thread before the bootstrap; a failed bootstrap raised from the constructor
with the thread running. The readiness probe retries while the broker is away, so each try left a thread
(``make soak``: the services' workers grew threads after two brokers were lost)."""

from __future__ import annotations

import socket
import threading

import pytest

from services.common.adapters.kafka import AdminClient
from tests.support.waiting import wait_until


def io_threads(client_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"kafka-io-{client_id}" and t.is_alive()]


def test_an_admin_client_that_cannot_bootstrap_stops_its_io_thread() -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{unused.getsockname()[1]}"
    for _try in range(3):
        with pytest.raises(Exception):  # noqa: B017, PT011 - kafka-python's timeout or "no brokers"
            AdminClient(bootstrap_servers=address, client_id="probe-unreachable", request_timeout_ms=300,
                        bootstrap_timeout_ms=300)
    wait_until(lambda: not io_threads("probe-unreachable"), 5, "the failed clients' IO threads to end")
