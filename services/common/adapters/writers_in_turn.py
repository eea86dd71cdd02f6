"""The event store's writers of all processes take turns on a file lock, not on the store's own wait.

SQLite admits one writer; another process's writer that finds the lock taken retries after a sleep
that grows to 100 ms (``sqlite3``'s busy timeout), long after the lock was freed. With the
ledger served by two gunicorn workers, each posting batch waited so for the other worker's commit
(issue 17: p99 > 100 ms on the write path). Here a writer first waits on an ``flock`` beside the
database file, which wakes the next writer as soon as the holder lets go, and then finds SQLite's
lock free. Writers that do not take it (the relay's tracking row) still get SQLite's own wait.
Threads of one process share an open file, which ``flock`` does not tell apart: a thread lock
orders them first. For the same reason a process opens the file itself (a worker forked from a
master that had it open would share the master's).

The group commit takes the turn *before* it takes its batch (``group_commit.py``), so postings that
arrive while another worker commits join the next batch instead of waiting a whole commit more;
on PostgreSQL too (``IDO_WRITERS_TURN_FILE``), where eventsourcing's table lock serialises the
commits of all writers anyway and the turn only orders this host's workers before it. The turn is
re-entrant within a thread (the SQLite recorder takes it again inside the group commit's save).
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

WRITERS_TURN_FILE = "IDO_WRITERS_TURN_FILE"
"""An application's env key: the lock file its writers take turns on (the PostgreSQL store's; SQLite's
recorder has its own beside the database file)."""


class WritersInTurn:
    def __init__(self, db_name: str, *, lock_file: str | None = None):
        in_memory = db_name == ":memory:" or "mode=memory" in db_name
        self.path = lock_file or (None if in_memory else f"{db_name}.writer-lock")
        self._thread_lock = threading.RLock()
        self._depth = 0  # changed only by the thread holding _thread_lock
        self._fd: int | None = None
        self._opened_by_pid = 0

    @classmethod
    def at(cls, lock_file: str) -> WritersInTurn:
        return cls("", lock_file=lock_file)

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        self._depth += 1
        if self._depth > 1 or self.path is None:
            return
        try:
            if self._fd is None or self._opened_by_pid != os.getpid():
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._opened_by_pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._depth -= 1
            self._thread_lock.release()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._depth == 1 and self._fd is not None and self.path is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._depth -= 1
            self._thread_lock.release()


def writers_turn_of(application: Any) -> WritersInTurn | None:
    """The turn the writers of ``application``'s event store take: its recorder's (SQLite), or one on
    the file its env names (PostgreSQL); None for a store without either (in memory)."""
    found: WritersInTurn | None = getattr(application.recorder, "writers_turn", None)
    if found is not None:
        return found
    lock_file = application.env.get(WRITERS_TURN_FILE)
    return WritersInTurn.at(lock_file) if lock_file else None
