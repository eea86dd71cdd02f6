"""The projector's reading process (services/common/assigned_reader.py), against a real broker: the same
offsets, keys, values and verdicts as reading and checking in the projector's own process, in order; a
seal judged on the headers as they came and a dead letter's seal headers kept as they came; a new aim drops
what was read for the one before; and it ends by itself when the projector closes it, even while another
forked process holds copies of the pipes."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from contracts.canonical import canonical_json, compute_hash
from contracts.message_check import MessageCheck
from contracts.provenance import PROOF_HEADER, SEAL_HEADER, ProvenanceCheck
from contracts.topics import EXPENDITURES
from services.common.assigned_reader import AssignedReader, ReadBatch, reading_consumer
from services.common.check_process import check_messages
from services.common.config import load_settings
from services.common.consumer import POLL_SETTINGS
from services.common.signing import build_provenance_check, seal_envelopes
from tests.contracts.test_message_check import _recorded
from tests.support.infra import KafkaInfo
from tests.support.mixed_values import mixed_values

MESSAGES = 4_500  # several polls of each partition

SETTINGS = {"enable_auto_commit": False, **POLL_SETTINGS, "max_poll_records": 1000, "client_id": "test-assigned-reader"}
"""The projector's settings, with polls of at most 1,000: several a partition."""


@pytest.fixture
def topic(topic_prefix: str, kafka: KafkaInfo) -> str:
    name = topic_prefix + EXPENDITURES.name
    producer = KafkaProducer(**kafka.client(), acks="all", linger_ms=5)
    for i, value in enumerate(mixed_values(MESSAGES)):
        producer.send(name, key=f"k{i % 7}".encode(), value=value, partition=i % 2)
    producer.flush()
    producer.close()
    return name


Read = dict[TopicPartition, list[tuple[int, bytes, bytes]]]


def _read_here(kafka: KafkaInfo, aim: dict[TopicPartition, int]) -> Read:
    """Each partition's (offset, key, value) from its aimed offset to its end, read in this process."""
    consumer = KafkaConsumer(**kafka.client(), **SETTINGS, group_id=None)
    try:
        consumer.assign(list(aim))
        for tp, offset in aim.items():
            consumer.seek(tp, offset)
        ends = consumer.end_offsets(list(aim))
        found: Read = {tp: [] for tp in aim}
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in aim) and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                found[tp] += [(r.offset, r.key, r.value) for r in records]
        return found
    finally:
        consumer.close()


def _take_all(reader: AssignedReader, expected: int) -> list[ReadBatch]:
    batches: list[ReadBatch] = []
    deadline = time.monotonic() + 60
    while sum(len(b.offsets) for b in batches) < expected and time.monotonic() < deadline:
        batches += reader.take(0.5) or []
    return batches


@pytest.mark.parametrize("hand_over", [False, True], ids=["the process checks all", "the projector checks some"])
def test_the_reading_process_gives_the_projectors_own_messages_and_verdicts_and_ends_by_itself(
    kafka: KafkaInfo, topic: str, hand_over: bool
) -> None:
    check = MessageCheck()
    aim = {TopicPartition(topic, 0): 0, TopicPartition(topic, 1): 1000}
    expected = _read_here(kafka, aim)
    reader = AssignedReader(kafka.client(), SETTINGS, check, None, hand_over=hand_over)
    process = reader._process
    reader.aim(dict(aim))
    got = _take_all(reader, sum(len(messages) for messages in expected.values()))
    bystander = multiprocessing.get_context("fork").Process(target=multiprocessing.Event().wait, args=(30,))
    bystander.start()  # holds forked copies of every descriptor of this process, the pipes' ends among them
    try:
        reader.close()
        assert process.exitcode == 0  # ended on its own, not killed after the join's timeout
    finally:
        bystander.kill()
        bystander.join()
    for tp, messages in expected.items():
        batches = [b for b in got if (b.topic, b.partition) == (tp.topic, tp.partition)]
        assert len(batches) > 1  # several polls of the partition
        read = [(o, k, v) for b in batches for o, k, v in zip(b.offsets, b.keys, b.values, strict=True)]
        assert read == messages  # every message once, in order, from the aimed offset
        verdicts = [v for b in batches for v in b.verdicts]
        assert verdicts == check_messages(check, None, topic, [(value, []) for _o, _k, value in messages])
    assert {type(v) for b in got for v in b.verdicts} == {dict, str}
    # the first take waits (nothing was read yet), so with the hand-over the next poll comes unchecked
    assert (reader.checked_here > 0) is hand_over


def test_an_envelope_only_parse_message_accepts_crosses_the_pipe_as_parse_message_read_it(
    topic_prefix: str, kafka: KafkaInfo
) -> None:
    """The process sends None for an envelope that passed the fast check, and the projector reads its value
    again with orjson; an envelope the fast check left to ``parse_message`` comes as ``parse_message`` read
    it. Here one whose unknown field orjson would read as a float (2**70) and one with a UUID without dashes
    (marshmallow takes it, the JSON Schema's format does not)."""

    def forged(envelope: dict[str, object]) -> bytes:
        envelope.pop("hash")
        envelope["hash"] = compute_hash(envelope)
        return json.dumps(envelope).encode()

    big = _recorded()
    big["payload"]["unknown"] = 2**70  # type: ignore[index]
    undashed = _recorded()
    undashed["event_id"] = str(undashed["event_id"]).replace("-", "")
    values = [forged(big), canonical_json(_recorded()), forged(undashed)]
    check = MessageCheck()
    assert [check.judge(value)[1] for value in values] == [False, True, False]
    name = topic_prefix + EXPENDITURES.name
    producer = KafkaProducer(**kafka.client(), acks="all")
    for value in values:
        producer.send(name, value=value, partition=2)
    producer.flush()
    producer.close()
    reader = AssignedReader(kafka.client(), SETTINGS, check, None, hand_over=False)
    try:
        reader.aim({TopicPartition(name, 2): 0})
        got = [v for b in _take_all(reader, len(values)) for v in b.verdicts]
    finally:
        reader.close()
    assert got == check_messages(check, None, name, [(value, []) for value in values])
    assert got[0]["payload"]["unknown"] == 2**70 and type(got[0]["payload"]["unknown"]) is int  # type: ignore[index]
    assert got[2]["event_id"] == undashed["event_id"]  # type: ignore[index]


def test_a_new_aim_drops_what_was_read_for_the_one_before(kafka: KafkaInfo, topic: str) -> None:
    """Partitions revoked, or a poll that failed: what the process read ahead for the old aim is never taken."""
    reader = AssignedReader(kafka.client(), SETTINGS, MessageCheck(), None)
    try:
        reader.aim({TopicPartition(topic, 0): 0, TopicPartition(topic, 1): 0})
        first = _take_all(reader, 1)
        assert first
        time.sleep(1)  # the process reads ahead meanwhile, up to its bound
        reader.aim({TopicPartition(topic, 1): 2000})
        after = _take_all(reader, MESSAGES // 2 - 2000)
        assert {b.partition for b in after} == {1}
        assert after[0].offsets[0] == 2000
        assert [o for b in after for o in b.offsets] == list(range(2000, MESSAGES // 2))
        reader.aim({})
        assert reader.take(0.5) is None  # nothing aimed at: nothing read
    finally:
        reader.close()


def test_seals_are_judged_on_the_headers_as_they_came_and_a_dead_letter_keeps_them(
    topic_prefix: str, kafka: KafkaInfo, tmp_path: Path
) -> None:
    """A message whose seal headers come twice, come empty, are missing or belong to another message gets
    the verdict it gets in the projector's own process (the last header of each name counts, as
    ``ProvenanceCheck.check`` reads), and its record for a dead letter has its seal headers as they came."""
    settings = load_settings(
        {"IDO_DATA_DIR": str(tmp_path), "IDO_KEYS_DIR": str(tmp_path / "keys"), "IDO_TOPIC_PREFIX": topic_prefix}
    )
    name = topic_prefix + EXPENDITURES.name
    envelopes = [_recorded(amount_cents=1000 + i, reference=f"INV-{i}") for i in range(6)]
    seals = seal_envelopes(settings, EXPENDITURES.name, envelopes, batch_size=3)
    values = [canonical_json(envelope) for envelope in envelopes]
    labels = [("event_type", b"ExpenditureRecorded"), ("event_id", b"x")]
    seal, proof = seals[0]
    messages: list[tuple[bytes | None, list[tuple[str, bytes]]]] = [
        (values[0], [*labels, *seals[0]]),  # genuine
        (values[1], [*seals[1], (SEAL_HEADER, b"{}"), (PROOF_HEADER, b"0:")]),  # a second, forged pair counts
        (values[2], [(SEAL_HEADER, b"{}"), (PROOF_HEADER, b"0:"), *seals[2]]),  # the genuine pair comes last
        (values[3], [seal, proof]),  # another message's seal and proof
        (values[4], [seals[4][0]]),  # no proof
        (values[5], [(SEAL_HEADER, b""), seals[5][1]]),  # an empty seal header
        (values[5], [(PROOF_HEADER, seals[5][1][1]), (SEAL_HEADER, seals[5][0][1])]),  # proof before seal
        (values[5], [("ido-seal-extra", b"x"), *seals[5]]),  # a third header of the family
        (values[5], []),
        (None, [*seals[5]]),
    ]
    producer = KafkaProducer(**kafka.client(), acks="all")
    for value, headers in messages:
        producer.send(name, key=b"k", value=value, headers=headers, partition=0)
    producer.flush()
    producer.close()
    check = MessageCheck()
    provenance: ProvenanceCheck = build_provenance_check(settings)
    expected = check_messages(check, provenance, name, messages)
    reader = AssignedReader(kafka.client(), SETTINGS, check, provenance)
    try:
        reader.aim({TopicPartition(name, 0): 0})
        got = _take_all(reader, len(messages))
    finally:
        reader.close()
    assert [v for b in got for v in b.verdicts] == expected
    assert [isinstance(v, dict) for v in expected] == [True, False, True, False, False, False, True, True, False, False]
    records = [b.record(i) for b in got for i in range(len(b.offsets))]
    for record, (value, headers) in zip(records, messages, strict=True):
        assert record.value == value
        assert record.headers == [(n, v) for n, v in headers if n.startswith("ido-seal")]


def test_a_take_of_ready_polls_only_waits_for_none_and_gives_those_read_ahead_in_order(
    kafka: KafkaInfo, topic: str
) -> None:
    """The projector's coalescing (``ProjectionRunner._takes``): polls read already come, checked by the process,
    in order; with none read it does not wait, nor tell the process the projector waits (no poll handed over)."""
    reader = AssignedReader(kafka.client(), SETTINGS, MessageCheck(), None)
    try:
        reader.aim({})
        started = time.monotonic()
        assert reader.take(5, ready_only=True) is None
        assert time.monotonic() - started < 2.5  # not the 5 s a waiting take would give it
        assert reader._waiting.value == 0
        reader.aim({TopicPartition(topic, 0): 0})
        time.sleep(1)  # the process reads ahead meanwhile, up to its bound
        offsets: list[int] = []
        while (ready := reader.take(5, ready_only=True)) is not None:
            offsets += [o for batch in ready for o in batch.offsets]
        assert offsets, "nothing was ready after a second of reading ahead"
        assert offsets == list(range(len(offsets)))  # in order, from the aimed offset, each once
        assert reader.checked_here == 0  # checked by the process: none handed over
        assert reader._waiting.value == 0
    finally:
        reader.close()


def test_the_reading_consumer_knows_its_topics_partitions_before_the_first_aim(kafka: KafkaInfo, topic: str) -> None:
    """Without the lookup, kafka-python learns an assigned partition's leader only from a metadata request it
    spaces by ``retry_backoff_ms``: the first aim's fetch waited for it (issue 17, twenty-second round)."""
    primed = reading_consumer(kafka.client(), SETTINGS, [topic])
    bare = reading_consumer(kafka.client(), SETTINGS, [])
    try:
        # kafka-python's metadata cache (private in the pinned 3.0.12): what an assign finds without asking
        assert {0, 1} <= (primed._cluster.partitions_for_topic(topic) or set())
        assert bare._cluster.partitions_for_topic(topic) is None
    finally:
        primed.close()
        bare.close()


def test_the_reading_process_says_it_has_started_and_then_reads_as_aimed(kafka: KafkaInfo, topic: str) -> None:
    reader = AssignedReader(kafka.client(), SETTINGS, MessageCheck(), None, topics=[topic])
    try:
        assert reader.started(30)
        assert reader.started(0)  # said once, known after
        aim = {TopicPartition(topic, 0): 0}
        expected = _read_here(kafka, aim)[TopicPartition(topic, 0)]
        reader.aim(dict(aim))
        batches = _take_all(reader, len(expected))
        read = [(o, k, v) for b in batches for o, k, v in zip(b.offsets, b.keys, b.values, strict=True)]
        assert read == expected
    finally:
        reader.close()
