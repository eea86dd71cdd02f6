"""The projector's reading and per-message checks, in a forked process beside the one that writes the view.

Decoding Kafka's record batches is pure Python in kafka-python: in the projector's own process it took a
fifth of that process's time, the process that sets the pace (issue 17, ninth round: bench/README.md,
row 3). So the projector's consumer only keeps its place in the consumer group: its partitions stay
paused and it fetches nothing. Each time the group assigns partitions (and after each failure) the
projector sends this process the partitions and the offsets stored with the view (``aim``); the process
reads them with a consumer of its own (no group, nothing committed), checks each message's contract, hash
and seal (``check_process.lean_verdicts``) and sends every poll back, each partition's batch with its
offsets, keys, values, seal headers and verdicts. The projector applies what it takes in the order it was
read, with the offsets stored in the same transaction, as when it read them itself.

Reading and checking then cost more than applying, so when the projector waits for a poll it says so,
and polls come unchecked for it to check while this process reads on (``check_process.HandOver``, as
in the audit replay's reading process). Which polls each process checks depends on the machine's pace;
the verdicts do not.

Each ``aim`` starts a new generation: what the process read for an earlier one (partitions revoked, a
batch read before a failure) is dropped when it arrives, so nothing is applied from a place the projector
did not aim at. The process reads at most ``AHEAD_POLLS`` polls ahead of the projector.

The process starts connected, with its topics' partitions known (``reading_consumer``), and says so first
(``READY``): the projector joins its group only then, so its first aim is read at once.
"""

from __future__ import annotations

import multiprocessing
import pickle
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from contracts.message_check import MessageCheck
from contracts.provenance import PROOF_HEADER, SEAL_HEADER, ProvenanceCheck
from services.common.check_process import (
    HandOver,
    PipeWriter,
    Verdict,
    check_messages,
    full_verdicts,
    lean_verdicts,
    pickled_error,
    received,
    with_headers,
)
from services.common.forking import end_forked, start_forked, telling_its_stacks

AHEAD_POLLS = 2
"""Polls the process may have read and checked before the projector takes them (a poll: up to 5,000
messages, ~4 MB), so the projector's memory stays flat."""

SEAL_FAMILY = "ido-seal"
"""The headers a dead letter keeps of its message (``ProjectionRunner._dead_letter``)."""

CLOSE_WAIT_S = 10.0
"""How long ``close`` waits for the process to end before it is killed."""

READY_WITHIN_S = 120.0
"""How long a new process may take to say READY: its connect (kafka-python's bootstrap, 30 s at most) and
the lookup of its topics' partitions, each bounded by the broker's request timeout. A process that says
nothing for longer is stuck, not slow: it is killed and ``started`` raises, so the projector logs it and
starts another, where it would otherwise read nothing, silently, for good (services/common/forking.py)."""

READ_WAIT_MS = 100
"""How long one fetch of the process waits for messages before it looks for a new aim."""

READY = pickle.dumps((0, "ready", None), protocol=pickle.HIGHEST_PROTOCOL)
"""The process's first message: it has started (``AssignedReader.started``). Of generation 0, which no aim has."""


@dataclass(frozen=True)
class ReadBatch:
    """One partition's messages of a poll as read and checked: what the projector applies and what a dead
    letter of one of them needs."""

    topic: str
    partition: int
    offsets: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    seals: list[Any]
    proofs: list[Any]
    verdicts: list[Verdict]
    irregular: Mapping[int, list[tuple[str, Any]]]
    """The seal-family headers (``ido-seal*``) of each message (by its index) that has others than its one seal
    and one proof header, in that order: all of them, as they came."""

    def record(self, index: int) -> Record:
        """The ``index``-th message as a dead letter needs it: its seal-family headers, which the dead letter
        keeps (the other headers it does not keep are left out)."""
        headers = self.irregular.get(index)
        if headers is None:
            headers = _seal_family(self.seals[index], self.proofs[index])
        return Record(self.topic, self.partition, self.offsets[index], self.keys[index], self.values[index], headers)


@dataclass(frozen=True)
class Record:
    """A message with the fields of kafka-python's ``ConsumerRecord`` that a dead letter reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, Any]]


def _seal_family(seal: Any, proof: Any) -> list[tuple[str, Any]]:
    return [(name, value) for name, value in ((SEAL_HEADER, seal), (PROOF_HEADER, proof)) if value is not None]


Aim = dict[TopicPartition, int | None]
"""Each partition to read and the offset to read it from (None: its beginning)."""


class AssignedReader:
    """The forked reading process: ``aim`` it, then ``take`` each poll it read, in order."""

    def __init__(
        self,
        kafka_config: Mapping[str, Any],
        consumer_settings: Mapping[str, Any],
        check: MessageCheck,
        provenance: ProvenanceCheck | None,
        *,
        name: str = "ido-projector-reading",
        hand_over: bool = True,
        topics: Sequence[str] = (),
        ready_within_s: float | None = None,
    ):
        """``kafka_config``: the broker and the login; ``consumer_settings``: the rest of the consumer's settings
        (the runner's poll sizes and client id); ``hand_over``: a poll comes unchecked when the projector waits
        (False: the process checks all); ``topics``: the topics the process will be aimed at, whose partitions
        it looks up as it starts (``reading_consumer``); ``ready_within_s``: see ``READY_WITHIN_S``."""
        context = multiprocessing.get_context("fork")
        commands_out, commands_in = context.Pipe(duplex=False)
        results_out, results_in = context.Pipe(duplex=False)
        self._waiting: Any = context.Value("b", 0, lock=False)
        """Set when the projector waits for a poll (one byte of shared memory, read before each poll)."""
        self._process: Any = context.Process(
            target=telling_its_stacks(_read_and_send),
            args=(
                commands_out,
                results_in,
                dict(kafka_config),
                dict(consumer_settings),
                check,
                provenance,
                self._waiting,
                (commands_in, results_out),
                tuple(topics),
            ),
            name=name,
            daemon=True,
        )
        start_forked(self._process)  # not while a thread logs: the child would inherit that write's lock
        self._ready_by = time.monotonic() + (READY_WITHIN_S if ready_within_s is None else ready_within_s)
        commands_out.close()
        results_in.close()
        self._commands = commands_in
        self._results = results_out
        self._check = check
        self._provenance = provenance
        self._hand_over = hand_over
        self.checked_here = 0
        """Batches the projector checked itself (handed over unchecked)."""
        self.generation = 0
        self.aimed = False
        """The process has partitions to read."""
        self._started = False

    def started(self, timeout_s: float) -> bool:
        """Whether the process has started: connected, with the partitions of its topics known (or its connection
        failed: the first aim tries again and the projector hears why). Waits up to ``timeout_s`` for it; to be
        asked before the first ``aim``, as the process's first message says it (``take`` drops that message).
        Raises RuntimeError, the process killed, when it has not started within ``ready_within_s``."""
        if not self._started and self._results.poll(timeout_s):
            received(self._results, self._process, "the reading process")  # its first message: READY
            self._started = True
        if not self._started and time.monotonic() > self._ready_by:
            end_forked(self._process, wait_s=0, tell_stacks=True)
            raise RuntimeError(
                "the reading process did not start in time (stuck; its threads' stacks are on its standard error); "
                "it was killed"
            )
        return self._started

    def aim(self, aim: Aim) -> None:
        """Reads ``aim``'s partitions from its offsets from now on; what was read before is dropped."""
        self.generation += 1
        self.aimed = bool(aim)
        try:
            self._commands.send_bytes(pickle.dumps((self.generation, aim), protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            pass  # the process ended: ``take`` says so

    def take(self, timeout_s: float, *, ready_only: bool = False) -> list[ReadBatch] | None:
        """The next poll read for the current aim, one batch per partition, checked there or here; None when none
        came within ``timeout_s`` (``ready_only``: none is on its way already; the process is not told that the
        projector waits). An error of the reading is raised here; so is the end of the process (RuntimeError)."""
        while True:
            if not self._results.poll():
                if ready_only:
                    return None
                self._waiting.value = int(self._hand_over)
                if not self._results.poll(timeout_s):
                    return None
            generation, kind, body = pickle.loads(received(self._results, self._process, "the reading process"))
            if kind == "ready":  # READY, when ``started`` was not asked
                self._started = True
                continue
            if generation != self.generation:
                continue  # read for an earlier aim
            if kind == "error":
                raise body
            return [
                ReadBatch(topic, partition, offsets, keys, values, seals, proofs, self._verdicts(topic, values, seals,
                          proofs, lean), irregular)
                for topic, partition, offsets, keys, values, seals, proofs, lean, irregular in body
            ]

    def _verdicts(
        self, topic: str, values: list[bytes | None], seals: list[Any], proofs: list[Any], lean: list[Any] | None
    ) -> list[Verdict]:
        if lean is None:  # handed over unchecked
            self.checked_here += 1
            return check_messages(self._check, self._provenance, topic, with_headers(values, seals, proofs))
        return full_verdicts(lean, values)

    def alive(self) -> bool:
        return bool(self._process.is_alive())

    def close(self) -> None:
        """Ends the process: the end is sent as a message, and what it read meanwhile is taken and dropped until
        it has gone (another forked process may hold copies of these pipes' ends, so closing them would neither
        reach it as the end nor fail its writes)."""
        try:
            self._commands.send_bytes(b"")
        except OSError:
            pass
        deadline = time.monotonic() + CLOSE_WAIT_S
        try:
            while (left := deadline - time.monotonic()) > 0:
                if self._results.poll(left):
                    self._results.recv_bytes()
        except (EOFError, OSError):
            pass  # the process has gone
        self._results.close()
        self._commands.close()
        end_forked(self._process, wait_s=deadline - time.monotonic(), tell_stacks=True)


def _read_and_send(
    commands: Connection,
    results: Connection,
    kafka_config: dict[str, Any],
    consumer_settings: dict[str, Any],
    check: MessageCheck,
    provenance: ProvenanceCheck | None,
    waiting: Any,
    parents_ends: tuple[Connection, ...],
    topics: tuple[str, ...],
) -> None:
    """The reading process: READY out once it has started; then aims in, (generation, "poll", batches) or
    (generation, "error", the exception) out, until the parent closes its end. A batch's lean verdicts are None
    when it is handed over unchecked."""
    for end in parents_ends:  # else the parent's close would never reach this process as the end
        end.close()
    writer = PipeWriter(results, name="ido-reading-writer", max_waiting=AHEAD_POLLS)
    consumer: KafkaConsumer | None = None
    generation, aimed = 0, False
    hand_over = HandOver()

    def connected() -> KafkaConsumer:
        return reading_consumer(kafka_config, consumer_settings, topics)

    try:
        # Connected before the projector joins its group (it waits for READY), so the first aim finds it ready; if
        # the broker cannot be reached now, the first aim tries again and the projector hears why.
        consumer = connected()
    except Exception:  # noqa: BLE001 - see above
        consumer = None
    writer.put(READY)
    try:
        while not writer.broken.is_set():
            # A new aim first; with nothing to read, wait for one (EOFError: the parent closed its end).
            while commands.poll(0 if aimed else None):
                command = commands.recv_bytes()
                if not command:  # the end
                    return
                generation, aim = pickle.loads(command)
                try:
                    if consumer is None:
                        consumer = connected()
                    _aim(consumer, aim)
                    aimed = bool(aim)
                except Exception as error:  # noqa: BLE001 - sent to the projector, which retries with a new aim
                    writer.put(pickled_error(error, generation))
                    aimed = False
            if consumer is None or not aimed:
                continue
            try:
                polled = consumer.poll(timeout_ms=READ_WAIT_MS)
                if polled:
                    _ask_next_fetch(consumer)
            except Exception as error:  # noqa: BLE001 - as above
                writer.put(pickled_error(error, generation))
                aimed = False
                continue
            if polled:
                waited = bool(waiting.value)
                if waited:
                    waiting.value = 0
                batches = []
                for tp, records in polled.items():  # a poll holds a batch of each of several partitions
                    unchecked = hand_over.unchecked(waited=waited, behind=writer.full())
                    batches.append(_batch(None if unchecked else check, provenance, tp, records))
                    waited = False
                writer.put(pickle.dumps((generation, "poll", batches), protocol=pickle.HIGHEST_PROTOCOL))
    except (EOFError, OSError):
        pass
    finally:
        if consumer is not None:
            consumer.close()
        writer.close(timeout_s=10)


def reading_consumer(
    kafka_config: Mapping[str, Any], consumer_settings: Mapping[str, Any], topics: Sequence[str]
) -> KafkaConsumer:
    """The reading process's consumer (no group), connected to the broker and knowing ``topics``' partitions.

    A consumer without a group learns a topic's partitions only after ``assign``, and kafka-python spaces its
    metadata requests by ``retry_backoff_ms``: the first aim's fetch waited ~70 ms for the metadata, then
    ~17 ms for a new connection and its SCRAM login (its bootstrap connection is closed once the cluster is
    known), ~100 ms in all of bench row 3's first 200 ms (issue 17, twenty-second round). Looked up now, as
    the audit's reader does, they are known when the projector aims."""
    consumer = KafkaConsumer(**kafka_config, **consumer_settings, group_id=None)
    for topic in topics:
        consumer.partitions_for_topic(topic)
    return consumer


def _ask_next_fetch(consumer: KafkaConsumer) -> None:
    """Sends the next fetch now, so the broker's answer comes while this poll is checked and sent.

    kafka-python 3.0.12 sends a fetch only when a poll finds nothing buffered, and that poll then waits for the
    answer: the process waited on the broker about half its time while the projector waited on it (issue 17,
    seventeenth round, bench/README.md). The fetcher is a private attribute of the pinned kafka-python, read with
    getattr: without it the process reads as before. It sends nothing for a partition that has a fetch in
    flight or records buffered."""
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is not None:
        fetcher.send_fetches()


def _aim(consumer: KafkaConsumer, aim: Aim) -> None:
    consumer.assign(list(aim))
    for tp, offset in aim.items():
        if offset is None:
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, offset)


def _batch(
    check: MessageCheck | None, provenance: ProvenanceCheck | None, tp: TopicPartition, records: list[Any]
) -> tuple[Any, ...]:
    """One partition's records as they cross the pipe: ``ReadBatch``'s fields, the verdicts lean (None: not
    checked, ``check`` None). Of the headers only the seal and the proof cross (the last of each name, what the
    checks read; a seal's identical bytes once), and a message's whole seal family when it has more or less."""
    values: list[bytes | None] = []
    seals: list[Any] = []
    proofs: list[Any] = []
    irregular: dict[int, list[tuple[str, Any]]] = {}
    seen: dict[bytes, bytes] = {}
    for i, record in enumerate(records):
        seal = proof = None
        family: list[tuple[str, Any]] = []
        for name, value in record.headers or ():
            if name.startswith(SEAL_FAMILY):
                family.append((name, value))
                if name == SEAL_HEADER:
                    seal = value
                elif name == PROOF_HEADER:
                    proof = value
        if family != _seal_family(seal, proof):
            irregular[i] = family
        if type(seal) is bytes:
            seal = seen.setdefault(seal, seal)
        values.append(record.value)
        seals.append(seal)
        proofs.append(proof)
    lean = None
    if check is not None:
        messages = [(record.value, record.headers) for record in records]
        lean = lean_verdicts(check, provenance, tp.topic, messages, name_seal_failures=False)
    offsets, keys = [r.offset for r in records], [r.key for r in records]
    return tp.topic, tp.partition, offsets, keys, values, seals, proofs, lean, irregular
