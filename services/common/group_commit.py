"""Group commit: the aggregates of concurrent requests saved in one event-store transaction.

Both event stores take one writer at a time: SQLite by its write lock, eventsourcing's PostgreSQL
recorder by ``LOCK TABLE ... IN EXCLUSIVE MODE`` held through the commit. Every save therefore
waits for the commits (and fsyncs) of all saves before it, which capped the ledger's posting
endpoint at one fsync per request (bench/README.md, row 1). Here a request that finds a commit in
progress queues its aggregate; when that commit ends, one queued request commits everything queued
in one transaction and wakes the others. Each request still returns only after its own events are
durable, so "stored before 201" holds.

The committing request first takes the store's turn among writer processes (the gunicorn workers
of one host: ``writers_in_turn.py``), then picks its batch: the saves that queued while another
worker committed go with it. Picked before that wait, a batch carried what had queued during the
previous commit only (2 postings a transaction with 4 threads a worker; 3 now: bench/README.md).

A batch is atomic: when it fails (one aggregate's conflict, a broken connection), nothing of it was
stored and each aggregate is saved again on its own, so each request gets its own outcome. A save
may carry guards (``stream_guard.py``: streams that must still be empty, checked in the batch's
transaction); when some of the batch break theirs, those get ``GuardBroken`` and the rest of the
batch is committed again together, so a posting refused at the close does not cost the others.

A batch that fails because the database is away (``database_unreachable.py``) is not saved again item
by item: each save already spent the store's own retries (about 2 s on PostgreSQL), so N more would
keep the last request N times as long. Every save of that batch, and every save queued behind it,
gets the error at once (503 with Retry-After; the client retries with the same Idempotency-Key).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import IntegrityError, Recording

from services.common.database_unreachable import DATABASE_UNREACHABLE
from services.common.recorded_log import noted_by_owners, owner_notes
from services.common.stream_guard import GUARDS, GuardBroken, Guards

MAX_BATCH = 64


class SavesGivenEvents:
    """A mixin for the application whose saves go through ``GroupCommit``: a ``save`` of domain events
    takes them as they are.

    The group commit saves the events it collected from each request's aggregate. eventsourcing's ``save``
    asks of each whether it is an event with ``isinstance`` against its ``DomainEventProtocol``, a
    ``runtime_checkable`` Protocol: 7.4 µs an event on Python 3.11, 1.5 % of the GIL's samples of a posting
    under load (issue 17, twenty-fifth round), where asking the events' concrete base class takes 0.09 µs.
    Otherwise this is eventsourcing's ``save`` (9.5.6) step for step; a save of anything else is its own.
    tests/foundation/test_group_commit.py holds the library's ``save`` to the text this was written from."""

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[Any]]:
        if not objs or not all(isinstance(obj, DomainEvent) for obj in objs):
            return super().save(*objs, **kwargs)  # type: ignore[misc]
        application: Any = self
        processing_event: ProcessingEvent[Any] = ProcessingEvent()
        processing_event.events.extend(objs)
        processing_event.saved_kwargs.update(kwargs)
        recordings: list[Recording[Any]] = application._record(processing_event)
        application._take_snapshots(processing_event)
        application._notify(recordings)
        application.notify(processing_event.events)  # deprecated in eventsourcing, still called by its save
        return recordings


@dataclass(eq=False)
class _Pending:
    events: list[Any]
    guards: Guards = field(default_factory=dict)
    done: bool = False
    error: BaseException | None = None
    recordings: list[Any] = field(default_factory=list)
    noted: list[Any] = field(default_factory=list)
    """Its events the save's observers noted (``recorded_log``), for its own request's log line."""
    noted_for: str | None = None


class GroupCommit:
    def __init__(self, application: Application[Any], *, max_batch: int = MAX_BATCH):
        self.application = application
        self.max_batch = max_batch
        self._changed = threading.Condition()
        self._queue: list[_Pending] = []
        self._committing = False
        self.batches = 0
        """Transactions committed so far (the tests and the benchmark read it)."""
        self.saved = 0
        """Saves committed so far (``saved / batches``: the postings a transaction carried)."""

    def save(self, aggregate: Any, guards: Guards | None = None) -> list[Any]:
        """Stores the aggregate's pending events; returns their recordings, or raises as ``save`` would
        (``GuardBroken`` if its ``guards`` failed)."""
        pending = _Pending(list(aggregate.collect_events()), dict(guards or {}))
        with self._changed:
            self._queue.append(pending)
        while True:
            with self._changed:
                while self._committing and not pending.done:
                    self._changed.wait()
                if pending.done:
                    break
                self._committing = True
            batch: list[_Pending] = []
            try:
                with self._writer_turn():
                    with self._changed:  # picked in its turn: what queued while it waited goes with it
                        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                    self._commit(batch)
            except BaseException:
                if not batch:  # the turn itself failed, nothing was picked: only this save fails, and leaves
                    with self._changed:  # the queue, so that no later batch stores what its caller was refused
                        self._queue = [p for p in self._queue if p is not pending]
                raise
            finally:
                with self._changed:
                    for p in batch:
                        if not p.done:  # only when _commit itself was interrupted
                            p.error, p.done = RuntimeError("the group commit was interrupted"), True
                    away = next((p.error for p in batch if isinstance(p.error, DATABASE_UNREACHABLE)), None)
                    if away is not None:  # the saves queued meanwhile would only wait to fail the same way
                        for p in self._queue:
                            p.error, p.done = away, True
                        self._queue = []
                    self._committing = False
                    self._changed.notify_all()
        if pending.error is not None:
            raise pending.error
        if pending.noted:
            owner_notes(pending.noted, pending.noted_for)
        return pending.recordings

    def _writer_turn(self) -> AbstractContextManager[Any]:
        """The store's turn among writer processes, where it has one (``writers_in_turn.py``): taken before
        the batch is picked, so the saves that queued while another process committed go in this batch, not
        the next (issue 17: a batch picked before that wait carried 2 postings where 4 threads waited)."""
        turn: AbstractContextManager[Any] | None = getattr(self.application.recorder, "writer_turn", None)
        return turn if turn is not None else nullcontext()

    def _commit(self, batch: list[_Pending]) -> None:
        """Saves ``batch``; what the save's observers note of each event (the log line of the
        request that made it) is handed to the request that owns it, not this committing one."""
        with noted_by_owners() as noted:
            self._save_batch(batch)
        for p in batch:  # done only now: its owner may wake at any time after
            p.noted = [event for event in p.events if id(event) in noted]
            p.noted_for = next((noted[id(event)] for event in p.noted), None)
            p.done = True

    def _save_batch(self, batch: list[_Pending]) -> None:
        batch = _first_writer_of_each_version(batch)
        while len(batch) > 1:
            try:
                recordings = self.application.save(*(event for p in batch for event in p.events), **_guards(batch))
            except GuardBroken as broken:  # nothing was stored: refuse those it names, commit the rest again
                rest = _refuse(batch, broken)
                if len(rest) == len(batch):
                    break  # names none of the batch (cannot happen): each on its own, as on any failure
                batch = rest
                continue
            except DATABASE_UNREACHABLE as error:
                for p in batch:
                    p.error = error
                return
            except Exception:  # noqa: BLE001 - nothing of the batch was stored: each is saved on its own below
                break
            self.batches += 1
            self.saved += len(batch)
            by_event = {id(r.domain_event): r for r in recordings}
            for p in batch:
                p.recordings = [by_event[id(e)] for e in p.events if id(e) in by_event]
            return
        away: BaseException | None = None  # once met, the rest of the batch gets it without trying
        for p in batch:
            if away is not None:
                p.error = away
                continue
            try:
                p.recordings = self.application.save(*p.events, **_guards([p]))
                self.batches += 1
                self.saved += 1
            except DATABASE_UNREACHABLE as error:
                p.error = error
                away = error
            except Exception as error:  # noqa: BLE001 - handed to the request that owns the aggregate
                p.error = error


def _first_writer_of_each_version(batch: list[_Pending]) -> list[_Pending]:
    """The saves of ``batch`` that write no stream version an earlier save of it writes; the others get the
    store's own conflict at once (their commands load the stream again and retry, as after any lost race).
    Racing commands load a stream at the same version; kept in the batch, they failed its transaction, and
    each save was then made on its own: N + 1 transactions for one winner (tests/resilience/test_concurrency.py
    ran out of retry time with the larger batches of issue 17's third round)."""
    claimed: set[tuple[Any, Any]] = set()
    first = []
    for p in batch:
        versions = {(event.originator_id, event.originator_version) for event in p.events}
        if versions & claimed:
            p.error = IntegrityError("a save earlier in the same transaction writes this version of the stream")
            continue
        claimed |= versions
        first.append(p)
    return first


def _guards(batch: list[_Pending]) -> dict[str, Guards]:
    """The keyword of a save of ``batch``: none without guards (any recorder takes that save)."""
    guards = {aggregate: streams for p in batch for aggregate, streams in p.guards.items()}
    return {GUARDS: guards} if guards else {}


def _refuse(batch: list[_Pending], broken: GuardBroken) -> list[_Pending]:
    """Hands ``broken`` to the requests whose guards it names; the others of ``batch``."""
    rest = []
    for p in batch:
        if broken.refused & p.guards.keys():
            p.error = broken
        else:
            rest.append(p)
    return rest
