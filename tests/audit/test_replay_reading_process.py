"""The replay's reading process (services/audit/checks.py ``ReadingProcess``), against a real broker: the same
batches, offsets and verdicts as reading and checking in the replay's own process, in the same order, across
several batches a partition; an error of its reading raised in the replay; and it ends by itself when the
replay closes it, early or at the end, even while another forked process holds copies of the pipe."""

from __future__ import annotations

import multiprocessing

import pytest
from kafka import KafkaProducer, TopicPartition

from contracts.message_check import MessageCheck
from contracts.topics import EXPENDITURES
from services.audit.checks import ReadingProcess, read_and_check
from services.audit.replay import reading_phases
from services.audit.sources import TopicReader, audit_kafka_config
from services.common.config import Settings
from tests.support.infra import KafkaInfo
from tests.support.mixed_values import mixed_values

MESSAGES = 4_500  # a poll brings at most 2,000: several batches of each partition


@pytest.fixture
def topic(live: Settings, kafka: KafkaInfo) -> str:
    name = live.topic(EXPENDITURES.name)
    producer = KafkaProducer(**kafka.client(), acks="all", linger_ms=5)
    for i, value in enumerate(mixed_values(MESSAGES)):
        producer.send(name, value=value, partition=i % 2)
    producer.flush()
    producer.close()
    return name


@pytest.mark.parametrize("hand_over", [False, True], ids=["the process checks all", "the replay checks some"])
def test_the_reading_process_gives_the_replays_own_batches_and_verdicts_and_ends_by_itself(
    live: Settings, topic: str, hand_over: bool
) -> None:
    check = MessageCheck()
    reader = TopicReader(audit_kafka_config(live), [topic])
    try:
        phases = reading_phases(reader.end_offsets)
        expected = list(read_and_check(reader, phases, check, None))
        process = ReadingProcess(reader, phases, check, None, hand_over=hand_over)
        got = list(process)
        bystander = multiprocessing.get_context("fork").Process(target=multiprocessing.Event().wait, args=(30,))
        bystander.start()  # holds forked copies of every descriptor of this process, the pipe's ends among them
        try:
            process.close()
            assert process._process.exitcode == 0  # ended on its own, not killed after the join's timeout
        finally:
            bystander.kill()
            bystander.join()
    finally:
        reader.close()
    assert got == expected
    # the replay waits for the first batch (the process starts its consumer first): that one comes unchecked
    assert (process.checked_here >= 1) if hand_over else (process.checked_here == 0)
    assert sum(len(offsets) for _t, _p, offsets, _v in got) == MESSAGES
    assert len(got) > 2
    verdicts = [v for *_rest, batch in got for v in batch]
    assert sum(isinstance(v, str) and v.startswith("hash") for v in verdicts) == MESSAGES // 4
    undashed = [v for v in verdicts if isinstance(v, dict) and "-" not in v["event_id"]]
    assert len(undashed) == MESSAGES // 4  # parse_message's envelope, sent whole
    assert sum(isinstance(v, dict) for v in verdicts) == 3 * MESSAGES // 4


def test_closed_early_the_reading_process_ends_by_itself(live: Settings, topic: str) -> None:
    reader = TopicReader(audit_kafka_config(live), [topic])
    try:
        process = ReadingProcess(reader, reading_phases(reader.end_offsets), MessageCheck(), None)
        first = next(iter(process))
        process.close()
    finally:
        reader.close()
    assert first[2] and process._process.exitcode == 0


def test_an_error_of_the_reading_is_raised_in_the_replay(live: Settings, topic: str) -> None:
    """The history's end beyond what the topic holds: the reading process's ``TopicReader`` times out, and
    the replay raises that TimeoutError (``ido audit`` names it: the broker could not be read)."""
    reader = TopicReader(audit_kafka_config(live), [topic], idle_timeout_s=1)
    try:
        phases = [{TopicPartition(topic, 0): MESSAGES}]  # partition 0 holds half of them
        with ReadingProcess(reader, phases, MessageCheck(), None) as process, pytest.raises(TimeoutError):
            list(process)
    finally:
        reader.close()
