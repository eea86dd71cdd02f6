"""The replay's per-message checks (contract, hash, seal), in a second process beside the replay's own.

A message's checks need nothing but the message: they give the same verdict in whatever process and
order they run. What depends on order (duplicates, stream heads, every balance) stays in the replay's
process. So the replay hands each polled batch to a checker process (forked: it starts at once and
shares the code already loaded) and, while that one checks, reads the next batch from Kafka and
applies the batches already checked, in the order they were read. When the checker falls behind
(``MAX_IN_FLIGHT`` batches waiting) the replay checks the next batch itself, so neither process
waits for the other for long. On a machine with two cores this is what lets the replay approach the
time of reading alone (bench row 4).

A verdict is the envelope (dict) when the message passes, the reason (str) when it breaks its
contract, and (event_id, reason) when its seal does not cover it (``ProvenanceCheck``).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any

from contracts.message_check import MessageCheck
from contracts.provenance import ProvenanceCheck
from services.common.check_process import Message, Verdict, check_messages

MAX_IN_FLIGHT = 3
"""Batches handed to the checker and not yet taken back; beyond, the replay checks the next one itself.
Also what bounds the memory the two processes hold for each other (a batch: up to 2,000 messages)."""


def check_batch(
    check: MessageCheck, provenance: ProvenanceCheck | None, topic: str, messages: Sequence[Message]
) -> list[Verdict]:
    """The verdict of each message of one topic, in order: the projector's check, naming the event whose
    seal does not cover it."""
    return check_messages(check, provenance, topic, messages, name_seal_failures=True)


def _serve(
    requests: Connection, results: Connection, check: MessageCheck, provenance: ProvenanceCheck | None,
    parents_ends: tuple[Connection, ...],
) -> None:
    """The checker process: batches in, verdicts out, in order, until the replay says the end (an empty
    message) or closes its end."""
    # A forked child holds copies of every descriptor the parent had, the parent's ends of these pipes
    # among them: left open here, the replay's close would never reach this process as the end of input.
    for end in parents_ends:
        end.close()
    # A thread takes each batch off the pipe as soon as it is sent and another writes the verdicts, so
    # neither process blocks in a write while the other is busy (a batch is megabytes; a pipe holds 64 KB).
    inbox: queue.Queue[bytes | None] = queue.Queue()
    outbox: queue.Queue[bytes | None] = queue.Queue()

    def receive() -> None:
        try:
            while data := requests.recv_bytes():
                inbox.put(data)
        except (EOFError, OSError):
            pass
        inbox.put(None)

    def send() -> None:
        while (data := outbox.get()) is not None:
            results.send_bytes(data)

    threading.Thread(target=receive, daemon=True).start()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    while (data := inbox.get()) is not None:
        topic, messages = pickle.loads(data)
        outbox.put(pickle.dumps(check_batch(check, provenance, topic, messages), protocol=pickle.HIGHEST_PROTOCOL))
    outbox.put(None)
    sender.join()


class _Pending:
    __slots__ = ("key", "count", "verdicts")

    def __init__(self, key: Any, count: int, verdicts: list[Verdict] | None):
        self.key = key
        self.count = count
        self.verdicts = verdicts
        """None while the checker has it."""


class Checks:
    """Batches in, (key, verdicts) out in the order they came in; ``parallel``: with a checker process."""

    def __init__(self, check: MessageCheck, provenance: ProvenanceCheck | None, *, parallel: bool):
        self.check = check
        self.provenance = provenance
        self._pending: deque[_Pending] = deque()
        self._in_flight = 0
        self._process: Any = None
        self._requests: Connection | None = None
        self._results: Connection | None = None
        if parallel:
            self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("fork")
        requests_out, requests_in = context.Pipe(duplex=False)
        results_out, results_in = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_serve, args=(requests_out, results_in, self.check, self.provenance, (requests_in, results_out)),
            name="ido-audit-checks", daemon=True,
        )
        self._process.start()
        requests_out.close()
        results_in.close()
        self._requests, self._results = requests_in, results_out

    def put(self, key: Any, topic: str, messages: Sequence[Message]) -> Iterator[tuple[Any, list[Verdict]]]:
        """Hands one batch over; yields every batch now checked whose predecessors are all out."""
        if self._requests is not None and self._in_flight < MAX_IN_FLIGHT:
            self._requests.send_bytes(pickle.dumps((topic, list(messages)), protocol=pickle.HIGHEST_PROTOCOL))
            self._pending.append(_Pending(key, len(messages), None))
            self._in_flight += 1
        else:
            verdicts = check_batch(self.check, self.provenance, topic, messages)
            self._pending.append(_Pending(key, len(messages), verdicts))
        yield from self._ready(wait=False)

    def drain(self) -> Iterator[tuple[Any, list[Verdict]]]:
        """Every batch still pending, in order."""
        yield from self._ready(wait=True)

    def _ready(self, *, wait: bool) -> Iterator[tuple[Any, list[Verdict]]]:
        pending = self._pending
        while pending:
            head = pending[0]
            if head.verdicts is None:
                assert self._results is not None
                if not wait and not self._results.poll():
                    return
                head.verdicts = self._receive()
            pending.popleft()
            yield head.key, head.verdicts

    def _receive(self) -> list[Verdict]:
        assert self._results is not None
        try:
            data = self._results.recv_bytes()
        except EOFError:
            code = self._process.exitcode if self._process is not None else None
            raise RuntimeError(f"the replay's checker process ended (exit code {code})") from None
        self._in_flight -= 1
        verdicts: list[Verdict] = pickle.loads(data)
        return verdicts

    def close(self) -> None:
        if self._requests is not None:
            try:
                self._requests.send_bytes(b"")  # the end: another process's copy of this end may keep it open
            except OSError:
                pass  # the checker is gone already
            self._requests.close()
            self._requests = None
        if self._results is not None:
            self._results.close()
            self._results = None
        if self._process is not None:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._process = None

    def __enter__(self) -> Checks:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def parallel_by_default() -> bool:
    """A checker process only where it can run beside the replay: fork exists and there is a second core."""
    return "fork" in multiprocessing.get_all_start_methods() and (os.cpu_count() or 1) > 1
