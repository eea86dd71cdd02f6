"""One process at a time creates the stores' tables.

Every entry point creates the tables it needs when it starts (eventsourcing's ``CREATE TABLE IF
NOT EXISTS``, SQLAlchemy's ``create_all``). Neither is safe against another process doing the same
at the same moment: PostgreSQL answers one of them with a unique violation on ``pg_type``, SQLite
with "table already exists". Two gunicorn workers on a fresh database did exactly that, and the
worker that lost did not boot. So the start of ``ido serve`` (in each worker), ``ido relay`` and
``ido project`` holds this lock: a PostgreSQL advisory lock on the event store's database, or an
exclusive ``flock`` on a file beside the SQLite files.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from services.common.config import Settings

ADVISORY_LOCK_KEY = 0x1D0_1ED6E5
"""Any 64-bit number no other program on the database uses for an advisory lock."""


@contextmanager
def startup_lock(settings: Settings, *, timeout_s: float = 120) -> Iterator[None]:
    if settings.postgres is None:
        path = settings.data_dir / "run" / "startup.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    pg = settings.postgres
    with psycopg.connect(
        host=pg.host, port=pg.port, dbname=pg.dbname, user=pg.user, password=pg.password,
        autocommit=True, connect_timeout=10,
    ) as connection:
        connection.execute(f"SET lock_timeout = '{int(timeout_s * 1000)}ms'")
        connection.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            yield
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
