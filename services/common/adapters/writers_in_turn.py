"""The SQLite event store's writers of all processes take turns on a file lock, not on SQLite's busy wait.

SQLite admits one writer; another process's writer that finds the lock taken retries after a sleep
that grows to 100 ms (``sqlite3``'s busy timeout), long after the lock was freed. With the
ledger served by two gunicorn workers, each posting batch waited so for the other worker's commit
(issue 17: p99 > 100 ms on the write path). Here a writer first waits on an ``flock`` beside the
database file, which wakes the next writer as soon as the holder lets go, and then finds SQLite's
lock free. Writers that do not take it (the relay's tracking row) still get SQLite's own wait.
Threads of one process share an open file, which ``flock`` does not tell apart: a thread lock
orders them first. For the same reason a process opens the file itself (a worker forked from a
master that had it open would share the master's).

The turn is re-entrant within a thread: the group commit (``services/common/group_commit.py``) takes it
before it picks its batch, and the recorder's insert takes it again inside.
"""

from __future__ import annotations

import fcntl
import os
import threading
from types import TracebackType


class WritersInTurn:
    def __init__(self, db_name: str):
        in_memory = db_name == ":memory:" or "mode=memory" in db_name
        self.path = None if in_memory else f"{db_name}.writer-lock"
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._opened_by_pid = 0
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> None:
        if self._owner == threading.get_ident():  # the group commit took the turn before its batch
            self._depth += 1
            return
        self._thread_lock.acquire()
        if self.path is not None:
            try:
                if self._fd is None or self._opened_by_pid != os.getpid():
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                    self._opened_by_pid = os.getpid()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._thread_lock.release()
                raise
        self._owner, self._depth = threading.get_ident(), 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._depth -= 1
        if self._depth:
            return
        self._owner = None
        try:
            if self.path is not None and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()
