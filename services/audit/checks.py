"""The replay's reading and per-message checks (contract, hash, seal), in a second process beside the replay's own.

A message's checks need nothing but the message: they give the same verdict in whatever process and
order they run. What depends on order (duplicates, stream heads, every balance) stays in the replay's
process. So a forked process reads the topics (its own consumer: no group, nothing committed, up to the
end offsets the replay saw at its start, phase by phase as ``reading_phases`` orders them), checks each
batch and hands the replay the batch's offsets, values and verdicts, in the order it read them; the
replay only applies them. Decoding Kafka's record batches is pure Python (kafka-python) and about half
of what reading costs: in the replay's process it made that process the one that set the pace
(issue 17, eighth round: bench/README.md, row 4). Reading and checking then cost more than applying, so
when the replay waits for a batch it says so, and batches come unchecked (each message's value and seal
headers) for the replay to check while the reading process reads on: the next one at once, and from then
on a share that grows while the replay waits and shrinks while it falls behind (``HandOver``). Which
batches each process checks depends on the machine's pace; the verdicts do not.

A verdict is the envelope (dict) when the message passes, the reason (str) when it breaks its
contract, and (event_id, reason) when its seal does not cover it (``ProvenanceCheck``). An envelope that
is its value as orjson reads it crosses the pipe as None and is read again here (``full_verdicts``).
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Iterator, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from kafka import TopicPartition

from contracts.message_check import MessageCheck
from contracts.provenance import ProvenanceCheck
from services.audit.sources import TopicReader
from services.common.check_process import (
    HandOver,
    Message,
    PipeWriter,
    Verdict,
    check_messages,
    compact_batches,
    full_verdicts,
    lean_verdicts,
    pickled_error,
    received,
    with_headers,
)
from services.common.forking import end_forked, start_forked, telling_its_stacks

SILENCE_MARGIN_S = 90.0
"""How much longer than the reader's idle timeout the reading process may say nothing: it says why it stopped (its
idle timeout, the broker gone) well within that, so a longer silence is a stuck process (services/common/forking.py),
killed and raised, where the replay would otherwise wait for it for good."""

CLOSE_WAIT_S = 10.0
"""How long ``close`` waits for the process to end before it is killed (its stacks asked for first)."""

AHEAD_BATCHES = 4
"""Batches the reading process may have read and checked before the replay takes them: what the two
processes hold for each other (a batch: up to 2,000 messages, ~1.5 MB), so the replay's memory stays flat."""

CheckedBatch = tuple[str, int, list[int], list[Verdict]]
"""A partition's batch as read and checked: topic, partition, each message's offset, each one's verdict."""


def check_batch(
    check: MessageCheck, provenance: ProvenanceCheck | None, topic: str, messages: Sequence[Message]
) -> list[Verdict]:
    """The verdict of each message of one topic, in order: the projector's check, naming the event whose
    seal does not cover it."""
    return check_messages(check, provenance, topic, messages, name_seal_failures=True)


def read_and_check(
    reader: TopicReader,
    phases: Sequence[Mapping[TopicPartition, int]],
    check: MessageCheck,
    provenance: ProvenanceCheck | None,
) -> Iterator[CheckedBatch]:
    """Every batch of ``phases`` (``TopicReader.batches``' ``stop_at``s), read and checked in this process."""
    for phase in phases:
        for tp, records in reader.batches(stop_at=dict(phase)):
            messages = [(r.value, r.headers) for r in records]
            yield (
                tp.topic,
                tp.partition,
                [r.offset for r in records],
                check_batch(check, provenance, tp.topic, messages),
            )


class ReadingProcess:
    """``read_and_check`` in a forked process: iterate it for the same batches and verdicts, in the same order.

    The process opens a consumer of its own with the reader's settings (a consumer's connections must not
    be shared across a fork): the replay's reader, which found the partitions and their end offsets, stays
    idle meanwhile. An error of the reading (the broker gone, ``TopicReader``'s idle timeout) is raised here
    as it was raised there."""

    def __init__(
        self,
        reader: TopicReader,
        phases: Sequence[Mapping[TopicPartition, int]],
        check: MessageCheck,
        provenance: ProvenanceCheck | None,
        *,
        hand_over: bool = True,
    ):
        """``hand_over``: a batch comes unchecked when the replay waits (False: the reading process checks all)."""
        context = multiprocessing.get_context("fork")
        results_out, results_in = context.Pipe(duplex=False)
        self.check = check
        self.provenance = provenance
        self._hand_over = hand_over
        self._waiting: Any = context.Value("b", 0, lock=False)
        """Set by the replay when it waits for a batch (one byte of shared memory, read before each batch)."""
        self.checked_here = 0
        """Batches the replay checked itself (handed over unchecked)."""
        self._process: Any = context.Process(
            target=telling_its_stacks(_read_and_send),
            args=(
                results_in,
                results_out,
                reader.kafka_config,
                reader.topics,
                reader.idle_timeout_s,
                [dict(phase) for phase in phases],
                check,
                provenance,
                self._waiting,
            ),
            name="ido-audit-reading",
            daemon=True,
        )
        start_forked(self._process)  # not while a thread logs: the child would inherit that write's lock
        results_in.close()
        self._results = results_out
        self._silent_for_at_most_s = reader.idle_timeout_s + SILENCE_MARGIN_S

    def __iter__(self) -> Iterator[CheckedBatch]:
        while True:
            if self._hand_over and not self._results.poll():
                self._waiting.value = 1
            if not self._results.poll(self._silent_for_at_most_s):
                end_forked(self._process, wait_s=0, tell_stacks=True)
                raise RuntimeError(
                    f"the reading process said nothing for {self._silent_for_at_most_s:.0f} s (stuck; its threads' "
                    "stacks are on its standard error); it was killed"
                )
            kind, body = pickle.loads(received(self._results, self._process, "the reading process"))
            if kind == "end":
                return
            if kind == "error":
                raise body
            if kind == "unchecked":
                topic, partition, offsets, values, seals, proofs = body
                self.checked_here += 1
                messages = with_headers(values, seals, proofs)
                yield topic, partition, offsets, check_batch(self.check, self.provenance, topic, messages)
            else:
                topic, partition, offsets, values, lean = body
                yield topic, partition, offsets, full_verdicts(lean, values)

    def close(self) -> None:
        # Batches not taken are dropped: closing this end fails the process's next write, which ends it.
        self._results.close()
        end_forked(self._process, wait_s=CLOSE_WAIT_S, tell_stacks=True)

    def __enter__(self) -> ReadingProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _read_and_send(
    results: Connection,
    parents_end: Connection,
    kafka_config: Mapping[str, Any],
    topics: list[str],
    idle_timeout_s: float,
    phases: list[dict[TopicPartition, int]],
    check: MessageCheck,
    provenance: ProvenanceCheck | None,
    waiting: Any,
) -> None:
    """The reading process: batches out, ("batch", (topic, partition, offsets, values, lean verdicts)) or, when
    the replay waits, ("unchecked", (topic, partition, offsets, values, seals, proofs)); then ("end", None)
    or ("error", the exception)."""
    parents_end.close()  # else the parent's close would never reach this process as the end
    writer = PipeWriter(results, name="ido-audit-reading-writer", max_waiting=AHEAD_BATCHES)
    reader: TopicReader | None = None
    try:
        reader = TopicReader(kafka_config, topics, idle_timeout_s=idle_timeout_s)
        unseen = {tp for phase in phases for tp, end in phase.items() if end > 0} - set(reader.partitions)
        if unseen:  # TopicReader.batches reads only the partitions it found: these would be skipped, not read
            raise RuntimeError(f"the reading process does not find {sorted(unseen)}")
        hand_over = HandOver()
        for phase in phases:
            for tp, records in reader.batches(stop_at=phase):
                if writer.broken.is_set():
                    return
                offsets = [r.offset for r in records]
                messages = [(r.value, r.headers) for r in records]
                item: tuple[str, tuple[Any, ...]]
                waited = bool(waiting.value)
                if waited:
                    waiting.value = 0
                if hand_over.unchecked(waited=waited, behind=writer.full()):
                    _topic, values, seals, proofs = compact_batches([(tp.topic, messages)])[0]
                    item = ("unchecked", (tp.topic, tp.partition, offsets, values, seals, proofs))
                else:
                    lean = lean_verdicts(check, provenance, tp.topic, messages, name_seal_failures=True)
                    item = ("batch", (tp.topic, tp.partition, offsets, [r.value for r in records], lean))
                writer.put(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
        writer.put(pickle.dumps(("end", None)))
    except Exception as error:  # noqa: BLE001 - handed to the replay, which raises it as its own
        writer.put(pickled_error(error))
    finally:
        if reader is not None:
            reader.close()
        writer.close()
