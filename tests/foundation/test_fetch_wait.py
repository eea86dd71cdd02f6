"""A partition at its end must not hold up the others' reading (issue 17, nineteenth round).

The projector's reading process (``AssignedReader``) asks for its next fetch as soon as a poll is taken
(``assigned_reader._ask_next_fetch``); kafka-python leaves out of that fetch every partition with records
still buffered and sends one fetch to a broker at a time. When only partitions at their end are left for
it, the broker holds the fetch until ``fetch_max_wait_ms``, and the partition with records waits behind it:
with kafka-python's 500 ms the reading process idled a quarter of row 3 in empty polls."""

from __future__ import annotations

import time

from kafka import KafkaProducer, TopicPartition

from contracts.message_check import MessageCheck
from contracts.topics import EXPENDITURES
from services.common.assigned_reader import AssignedReader
from services.common.consumer import POLL_SETTINGS
from tests.support.infra import KafkaInfo

BACKLOG = 3_000
"""Messages of the partition with records: ~12 fetches of 64 KiB, each polled in three or more polls."""

STALL_S = 0.3
"""A gap between two polls with records this long is a held fetch (500 ms), not the broker's answer."""


def test_a_partition_at_its_end_does_not_hold_the_fetch_of_one_with_records(
    kafka: KafkaInfo, topic_prefix: str
) -> None:
    name = topic_prefix + EXPENDITURES.name
    producer = KafkaProducer(**kafka.client(), acks="all", linger_ms=5)
    producer.send(name, key=b"at-its-end", value=b"x" * 200, partition=0)
    for i in range(BACKLOG):
        producer.send(name, key=f"k{i}".encode(), value=b"y" * 200, partition=1)
    producer.flush()
    producer.close()
    # The projector's reading process with its settings, in small polls and fetches: many fetches to wait for.
    settings = {**POLL_SETTINGS, "enable_auto_commit": False, "max_poll_records": 100,
                "max_partition_fetch_bytes": 64 * 1024}
    reader = AssignedReader(kafka.client(), settings, MessageCheck(), None, hand_over=False)
    try:
        reader.aim({TopicPartition(name, 0): None, TopicPartition(name, 1): None})
        read, gaps_s, last = 0, [], None
        deadline = time.monotonic() + 60
        while read < BACKLOG + 1 and time.monotonic() < deadline:
            polled = reader.take(0.5)
            if not polled:
                continue
            now = time.monotonic()
            if last is not None:
                gaps_s.append(now - last)
            read, last = read + sum(len(batch.offsets) for batch in polled), now
    finally:
        reader.close()
    assert read == BACKLOG + 1
    stalls = [round(gap, 3) for gap in gaps_s if gap > STALL_S]
    # 500 ms held fetches gave one stall a fetch (~12); one is allowed for a slow moment of a loaded machine.
    assert len(stalls) <= 1, (stalls, len(gaps_s))
