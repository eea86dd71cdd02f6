"""Saves that hold only while some streams are still empty, decided inside the store's write transaction.

A command that checks a stream ("is the year's books stream started, i.e. is the year closed?") and
then saves reads and writes in two steps: a writer of that stream can commit in between. A guarded
save passes its condition to the event store (``Application.save(..., guards=...)``); the guarded
recorders (``adapters/guarded_recorders.py``) check it *after* taking the store's one write lock,
in the transaction that inserts the events, so the check and the insert are one decision, ordered
against every other write of the store.

``guards`` maps the id of each aggregate saved to the streams that must hold no event when it is
stored. When any of them holds one, nothing of the save is stored and ``GuardBroken`` names the
aggregates refused, so a group commit can store the others of its batch (``group_commit.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from uuid import UUID

GUARDS = "guards"
"""The keyword of ``Application.save`` and of the guarded recorders' ``insert_events``."""

Guards = Mapping[UUID, frozenset[UUID]]
"""Aggregate id -> ids of the streams that must be empty when it is stored."""


class GuardBroken(Exception):
    """Some guarded streams held events at the save: nothing of it was stored."""

    def __init__(self, refused: frozenset[UUID], present: frozenset[UUID]):
        super().__init__(f"{len(refused)} aggregate(s) refused: stream(s) {sorted(map(str, present))} not empty")
        self.refused = refused
        """The aggregates whose guard failed."""
        self.present = present
        """The guarded streams found holding events."""


def guarded_streams(guards: Guards | None) -> frozenset[UUID]:
    return frozenset(stream for streams in (guards or {}).values() for stream in streams)


def check_guards(guards: Guards | None, present: Iterable[UUID]) -> None:
    """Raises ``GuardBroken`` if any stream in ``present`` (those found holding events) is guarded."""
    found = frozenset(present) & guarded_streams(guards)
    if found:
        assert guards is not None
        refused = frozenset(aggregate for aggregate, streams in guards.items() if streams & found)
        raise GuardBroken(refused, found)


class GuardingRecorder:
    """Marks a recorder that checks ``guards``; the plain recorders accept the keyword and ignore it,
    so a command that depends on a guard refuses to run on one (``require_guarding``)."""


def require_guarding(recorder: object) -> None:
    if not isinstance(recorder, GuardingRecorder):
        raise RuntimeError(
            f"{type(recorder).__name__} does not check save guards; set APPLICATION_RECORDER_TOPIC "
            "as Settings.eventsourcing_env does (services/common/adapters/guarded_recorders.py)"
        )
