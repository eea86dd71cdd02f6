"""Ending the IO threads of Kafka clients whose constructor raised.

kafka-python 3.0 starts a client's IO thread (``kafka-io-<client id>``) in the client's constructor and leaves it
running when the constructor raises (a refused login, no broker to bootstrap from): nothing holds the client to
close it, and the thread keeps trying. Such threads lived on in the xdist worker into later tests, among them
the tests that fork a reading process (thirty-first round: three after tests/foundation/test_kafka_security.py).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from kafka.net.selector import NetworkSelector

STOP_WAIT_MS = 5000


def running_selectors() -> list[NetworkSelector]:
    """Every client's network selector in this process whose IO thread is running."""
    return [
        found for found in gc.get_objects()
        if isinstance(found, NetworkSelector) and found._io_thread is not None and found._io_thread.is_alive()
    ]


@contextmanager
def closing_leaked_clients() -> Iterator[None]:
    """Closes, on the way out, every selector whose IO thread was started inside and is still running: by then
    no client of the block is in use, and one whose constructor raised cannot be closed otherwise."""
    before = {id(selector) for selector in running_selectors()}
    try:
        yield
    finally:
        for selector in running_selectors():
            if id(selector) not in before:
                selector.stop(timeout_ms=STOP_WAIT_MS)
                selector.close()
        left = [s for s in running_selectors() if id(s) not in before]
        assert not left, f"IO threads still running after their selector was closed: {left}"
