"""The replay's reading process (services/audit/checks.py ``ReadingProcess``), against a real broker: the same
batches, offsets and verdicts as reading and checking in the replay's own process, in the same order, across
several batches a partition; an error of its reading raised in the replay; and it ends by itself when the
replay closes it, early or at the end, even while another forked process holds copies of the pipe."""

from __future__ import annotations

import json
import multiprocessing

import pytest
from kafka import KafkaProducer, TopicPartition

from contracts.canonical import canonical_json, compute_hash
from contracts.message_check import MessageCheck
from contracts.topics import EXPENDITURES
from services.audit.checks import HAND_OVER_STEP, HandOver, ReadingProcess, read_and_check
from services.audit.replay import reading_phases
from services.audit.sources import TopicReader, audit_kafka_config
from services.common.config import Settings
from tests.contracts.test_message_check import _recorded
from tests.support.infra import KafkaInfo

MESSAGES = 4_500  # a poll brings at most 2,000: several batches of each partition


def _values() -> list[bytes]:
    good = canonical_json(_recorded())
    broken = good.replace(b"Flyers", b"Posters")  # its hash no longer matches
    undashed = _recorded()  # marshmallow takes a UUID without dashes, the JSON Schema does not: parse_message's
    undashed["event_id"] = str(undashed["event_id"]).replace("-", "")
    undashed.pop("hash")
    undashed["hash"] = compute_hash(undashed)
    return [[good, broken, json.dumps(undashed).encode(), good][i % 4] for i in range(MESSAGES)]


@pytest.fixture
def topic(live: Settings, kafka: KafkaInfo) -> str:
    name = live.topic(EXPENDITURES.name)
    producer = KafkaProducer(**kafka.client(), acks="all", linger_ms=5)
    for i, value in enumerate(_values()):
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


def test_the_hand_over_follows_the_replays_pace() -> None:
    """A batch after the replay waited goes unchecked; while the replay keeps waiting the share grows, while
    it is behind it shrinks to nothing; in between the share is what the waits made it."""
    policy = HandOver()
    assert not policy.unchecked(replay_waited=False, replay_behind=False)  # at first, the process checks all
    assert policy.unchecked(replay_waited=True, replay_behind=False)
    for _ in range(5):
        policy.unchecked(replay_waited=True, replay_behind=False)
    assert policy.share == pytest.approx(6 * HAND_OVER_STEP)
    steady = [policy.unchecked(replay_waited=False, replay_behind=False) for _ in range(1000)]
    assert sum(steady) == pytest.approx(1000 * policy.share, abs=1)
    for _ in range(200):
        policy.unchecked(replay_waited=False, replay_behind=True)
    assert policy.share == 0
    assert not any(policy.unchecked(replay_waited=False, replay_behind=False) for _ in range(100))
    for _ in range(100):
        policy.unchecked(replay_waited=True, replay_behind=False)
    assert policy.share == 1.0
