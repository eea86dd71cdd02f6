"""The replay's per-message checks (contract, hash, seal), in a second process beside the replay's own.

A message's checks need nothing but the message: they give the same verdict in whatever process and
order they run. What depends on order (duplicates, stream heads, every balance) stays in the replay's
process. So the replay hands each polled batch to a checker process (the projector's,
``services/common/check_process.py``: forked, it starts at once and shares the code already loaded)
and, while that one checks, reads the next batch from Kafka and applies the batches already checked,
in the order they were read. When the checker falls behind (``MAX_IN_FLIGHT`` batches waiting) the
replay checks the next batch itself, so neither process waits for the other for long. On a machine
with two cores this is what lets the replay approach the time of reading alone (bench row 4).

A verdict is the envelope (dict) when the message passes, the reason (str) when it breaks its
contract, and (event_id, reason) when its seal does not cover it (``ProvenanceCheck``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from contracts.message_check import MessageCheck
from contracts.provenance import ProvenanceCheck
from services.common.check_process import CheckProcess, Message, Verdict, check_messages

MAX_IN_FLIGHT = 8
"""Batches handed to the checker and not yet taken back; beyond, the replay checks the next one itself.
Also what bounds the memory the two processes hold for each other (a batch: up to 2,000 messages). A poll
brings several partitions' batches at once: with 3, the replay checked 13-15 % of the batches itself while
the checker had time to spare, and the replay's own process is the one that sets the pace (8: 0-1 %; its
CPU 5.6-6.4 -> 5.2-5.8 s for 10^5 events, issue 17 sixth round)."""


def check_batch(
    check: MessageCheck, provenance: ProvenanceCheck | None, topic: str, messages: Sequence[Message]
) -> list[Verdict]:
    """The verdict of each message of one topic, in order: the projector's check, naming the event whose
    seal does not cover it."""
    return check_messages(check, provenance, topic, messages, name_seal_failures=True)


class _Pending:
    __slots__ = ("key", "count", "verdicts")

    def __init__(self, key: Any, count: int, verdicts: list[Verdict] | None):
        self.key = key
        self.count = count
        self.verdicts = verdicts
        """None while the checker has it."""


class Checks:
    """Batches in, (key, verdicts) out in the order they came in; ``parallel``: with a checker process
    (``services/common/check_process.py``, one batch a request)."""

    def __init__(self, check: MessageCheck, provenance: ProvenanceCheck | None, *, parallel: bool):
        self.check = check
        self.provenance = provenance
        self._pending: deque[_Pending] = deque()
        self._checker = (
            CheckProcess(check, provenance, name="ido-audit-checks", name_seal_failures=True) if parallel else None
        )

    def put(self, key: Any, topic: str, messages: Sequence[Message]) -> Iterator[tuple[Any, list[Verdict]]]:
        """Hands one batch over; yields every batch now checked whose predecessors are all out."""
        if self._checker is not None and self._checker.in_flight < MAX_IN_FLIGHT:
            self._checker.send([(topic, list(messages))])
            self._pending.append(_Pending(key, len(messages), None))
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
                assert self._checker is not None
                if not wait and not self._checker.ready():
                    return
                head.verdicts = self._checker.receive()[0]
            pending.popleft()
            yield head.key, head.verdicts

    def close(self) -> None:
        if self._checker is not None:
            self._checker.close()
            self._checker = None

    def __enter__(self) -> Checks:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
