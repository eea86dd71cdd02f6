"""The per-message checks (contract, hash, seal) and what a second process needs to run them beside its parent:
the projector's and the audit replay's reading processes.

A message's checks need nothing but the message, so they give the same verdict in any process and order.
Each reading process is forked (no second import of the code), reads with a consumer of its own, checks,
and sends what it read over a pipe (``services/common/assigned_reader.py`` for the projector,
``services/audit/checks.py`` for the replay); order-dependent work (duplicates, the view or the balances,
the offsets, dead letters) stays in the parent, which applies the batches in the order they were read.
Each side writes its pipe from a thread of its own (``PipeWriter``), so neither process stops in a write
(a poll is megabytes, a pipe holds 64 KiB) while the other is busy, and each write is one system call
that runs without the GIL. When the parent waits, batches come unchecked for it to check (``HandOver``).

A verdict is the envelope (dict) when the message passes, the reason (str) when it does not. Across the
pipe, an envelope that is the message's value as orjson reads it (nearly all) comes back as None and the
parent reads the value again: reading 0.7 KB of JSON costs less than unpickling the dict, and the checker
no longer pickles it (issue 17, eighth round).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import orjson

from contracts.envelope import ContractViolation
from contracts.message_check import MessageCheck
from contracts.provenance import PROOF_HEADER, SEAL_HEADER, ProvenanceCheck, seal_headers

Verdict = dict[str, Any] | str | tuple[str, str]
"""The envelope (dict) when the message passes, the reason (str) when it breaks its contract or its seal does
not cover it; (event_id, reason) for the latter when the caller asks the event to be named (the replay)."""
Message = tuple[bytes | None, Any]
"""A message's value and its Kafka headers."""
Batch = tuple[str, list[Message]]
"""One partition's messages of a poll, with their topic."""
_Sent = tuple[str, list[bytes | None], list[Any], list[Any]]
"""A batch as it crosses the pipe: its topic, and each message's value, seal and proof (``compact_batches``)."""
LeanVerdict = Verdict | None
"""A verdict as it crosses a pipe: None for the envelope that is the value as ``orjson.loads`` reads it."""


def compact_batches(batches: list[Batch]) -> list[_Sent]:
    """Of each message only what the checks read: its value and its seal and proof headers (``seal_headers``).
    A seal covers hundreds of messages: its identical bytes are sent once. Pickling each message's whole
    header list (its type and id too, a seal each) cost the projector and the replay ~3 µs an event
    (issue 17, sixth round)."""
    seen: dict[bytes, bytes] = {}
    sent: list[_Sent] = []
    for topic, messages in batches:
        values: list[bytes | None] = []
        seals: list[Any] = []
        proofs: list[Any] = []
        for value, headers in messages:
            seal, proof = seal_headers(headers)
            if type(seal) is bytes:
                seal = seen.setdefault(seal, seal)
            values.append(value)
            seals.append(seal)
            proofs.append(proof)
        sent.append((topic, values, seals, proofs))
    return sent


def with_headers(values: list[bytes | None], seals: list[Any], proofs: list[Any]) -> list[Message]:
    """The messages of a batch sent by ``compact_batches``, with the headers the checks read."""
    return [
        (value, [(SEAL_HEADER, seal), (PROOF_HEADER, proof)])
        for value, seal, proof in zip(values, seals, proofs, strict=True)
    ]


def check_messages(
    check: MessageCheck,
    provenance: ProvenanceCheck | None,
    topic: str,
    messages: Sequence[Message],
    *,
    name_seal_failures: bool = False,
) -> list[Verdict]:
    """The verdict of each message of one topic, in order, in whichever process: the projector's and the
    audit replay's one check."""
    return _check_messages(check, provenance, topic, messages, name_seal_failures=name_seal_failures)[0]


def _check_messages(
    check: MessageCheck,
    provenance: ProvenanceCheck | None,
    topic: str,
    messages: Sequence[Message],
    *,
    name_seal_failures: bool,
) -> tuple[list[Verdict], list[bool]]:
    """``check_messages``'s verdicts, and of each whether it is the value as orjson reads it
    (``MessageCheck.judge``)."""
    # Each step runs over the whole batch before the next (parse all, then prove all): each loop keeps
    # its code and data hot, which took the seal check from ~25 to ~13 µs a message (bench/README.md).
    judge = check.judge
    verdicts: list[Verdict] = []
    as_read: list[bool] = []
    for value, _headers in messages:
        try:
            parsed, fast = judge(value)
        except ContractViolation as violation:
            verdicts.append(violation.reason)
            as_read.append(False)
        else:
            verdicts.append(parsed)
            as_read.append(fast)
    if provenance is not None:
        prove = provenance.check
        for i, envelope in enumerate(verdicts):
            if type(envelope) is dict:
                try:
                    prove(topic, envelope, messages[i][1])
                except ContractViolation as violation:
                    verdicts[i] = (envelope["event_id"], violation.reason) if name_seal_failures else violation.reason
    return verdicts, as_read


def lean_verdicts(
    check: MessageCheck,
    provenance: ProvenanceCheck | None,
    topic: str,
    messages: Sequence[Message],
    *,
    name_seal_failures: bool,
) -> list[LeanVerdict]:
    """``check_messages``'s verdicts as they cross a pipe (``LeanVerdict``); ``full_verdicts`` turns them back."""
    verdicts, as_read = _check_messages(check, provenance, topic, messages, name_seal_failures=name_seal_failures)
    return [None if fast and type(v) is dict else v for v, fast in zip(verdicts, as_read, strict=True)]


def full_verdicts(lean: list[LeanVerdict], values: list[bytes | None]) -> list[Verdict]:
    """``lean_verdicts``'s verdicts with each None read again from its value."""
    loads = orjson.loads
    return [loads(value) if verdict is None else verdict for verdict, value in zip(lean, values, strict=True)]  # type: ignore[arg-type]


HAND_OVER_STEP = 0.05
"""How much the share of batches handed over unchecked moves each time the receiver waits or falls behind."""


class HandOver:
    """Which batches a reading process hands over unchecked, for the process that applies them (the receiver) to
    check: the one after the receiver waited, and a share of the others that follows the two processes' pace (up
    when the receiver waited, down when it is behind). Used by the projector's and the replay's reading processes:
    reading and checking cost more there than applying does in the receiver, which would otherwise idle."""

    def __init__(self) -> None:
        self.share = 0.0
        self._credit = 0.0

    def unchecked(self, *, waited: bool, behind: bool) -> bool:
        """``waited``: the receiver waited for a batch since the last one; ``behind``: batches wait for it."""
        if waited:
            self.share = min(1.0, self.share + HAND_OVER_STEP)
            return True
        if behind:
            self.share = max(0.0, self.share - HAND_OVER_STEP)
        self._credit += self.share
        if self._credit >= 1.0:
            self._credit -= 1.0
            return True
        return False


def received(connection: Connection, process: Any, what: str) -> bytes:
    """The next message from a forked process; when it ended instead, a RuntimeError naming it and its exit code."""
    try:
        return connection.recv_bytes()
    except (EOFError, OSError):
        raise RuntimeError(f"{what} {process.name} ended (exit code {process.exitcode})") from None


def pickled_error(error: Exception, *head: Any) -> bytes:
    """``(*head, "error", error)`` pickled for the parent, which raises it as its own; an error that does not
    pickle (a client library's, holding a socket) is sent by its name and text instead."""
    try:
        return pickle.dumps((*head, "error", error))
    except Exception:  # noqa: BLE001 - named instead
        return pickle.dumps((*head, "error", RuntimeError(f"{type(error).__name__}: {error}")))


class PipeWriter:
    """A thread that sends what is ``put``, in order, until ``close``: each write (a poll is megabytes, a pipe
    holds 64 KiB) runs in it without the GIL while its process works on. Once the other side has closed its
    end, what is put is dropped (``broken``), so neither ``put`` nor ``close`` waits for ever on a bounded
    queue; the reader on the other side has seen the end."""

    def __init__(self, connection: Connection, *, name: str, max_waiting: int = 0):
        """``max_waiting``: messages that may wait to be sent before ``put`` waits (0: no bound)."""
        self._connection = connection
        self._outbox: queue.Queue[bytes | None] = queue.Queue(maxsize=max_waiting)
        self.broken = threading.Event()
        """The other side closed its end: nothing put is sent any more."""
        self._thread = threading.Thread(target=self._send, name=name, daemon=True)
        self._thread.start()

    def _send(self) -> None:
        while (data := self._outbox.get()) is not None:
            if self.broken.is_set():
                continue
            try:
                self._connection.send_bytes(data)
            except OSError:
                self.broken.set()

    def put(self, data: bytes) -> None:
        self._outbox.put(data)

    def full(self) -> bool:
        """``max_waiting`` messages wait: the other side is behind."""
        return self._outbox.full()

    def close(self, timeout_s: float | None = None) -> None:
        """Sends what waits (unless ``broken``), then ends the thread."""
        self._outbox.put(None)
        self._thread.join(timeout=timeout_s)


def parallel_by_default() -> bool:
    """A checker process only where it runs beside its parent: fork exists and there is a second core."""
    return "fork" in multiprocessing.get_all_start_methods() and (os.cpu_count() or 1) > 1
