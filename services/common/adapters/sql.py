"""SQLAlchemy engines for the services' own tables (views, idempotency keys, offsets).

SQLAlchemy Core is used so one piece of SQL serves both SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc

PING_AFTER_IDLE_S = 2.0
"""A pooled PostgreSQL connection is pinged before use only when it rested this long in the pool."""

READ_CONNECTIONS = 10
"""Connections a read engine holds at most, per process. A request that finds them all in use waits for one
(up to ``READ_POOL_TIMEOUT_S``) instead of opening a connection of its own."""

READ_POOL_TIMEOUT_S = 30.0
"""How long a read waits for one of the ``READ_CONNECTIONS`` before it fails (SQLAlchemy's default)."""


def create_sql_engine(url: str) -> Engine:
    return _engine(url, {})


def create_read_engine(url: str) -> Engine:
    """An engine for reads only: every statement is a transaction of its own (AUTOCOMMIT). On PostgreSQL a
    ``with engine.connect()`` otherwise cost two round trips more than its statements, a BEGIN before the
    first and a ROLLBACK when the connection went back to the pool: 8 of the ~15 round trips of the ledger's
    read after a posting (issue 17, row 5). Each statement reads what is committed when it starts, as it did
    in a READ COMMITTED transaction; SQLite's driver began no transaction for a read anyway. Never for writes:
    a write's statements would no longer commit or fail together.

    The pool has no overflow: the default let a burst of reads open connections beyond the pool's size and
    closed each one when it came back. Under bench row 5 on PostgreSQL (64 threads a server process, a burst of
    reads whenever a projector's commit woke their requests) that was ~500 new connections in 12 s, a
    backend started for each (and a SCRAM exchange in production), ~0.3 a request (issue 17, eleventh
    round). A read never holds two connections of one engine at once (``tests/ledger/test_read_pool.py``), so
    a request waiting for a connection always gets one."""
    return _engine(url, {
        "isolation_level": "AUTOCOMMIT", "pool_size": READ_CONNECTIONS, "max_overflow": 0,
        "pool_timeout": READ_POOL_TIMEOUT_S,
    })


def _engine(url: str, options: dict[str, Any]) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **options)

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            # WAL lets readers and the projector work while a writer commits; FULL sync for durability.
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # psycopg prepares a statement after 5 runs, and PostgreSQL may then settle on a generic plan
    # made blind to the parameters. For the projector's duplicate check (500 ids in one IN list,
    # on a table whose statistics lag behind its growth) that plan scanned the whole consumer's
    # rows: 3 ms became 100-170 ms per batch and growing (bench/README.md, row 3). Custom plans
    # cost ~0.05 ms of planning per statement.
    engine = create_engine(
        url, **{"pool_size": 10, "max_overflow": 20, **options},
        connect_args={"options": "-c plan_cache_mode=force_custom_plan"},
    )
    ping_when_idle(engine, PING_AFTER_IDLE_S)
    return engine


def ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Pessimistic disconnect handling without a round trip per use.

    ``pool_pre_ping`` pings on every checkout: under load that is one extra round trip per query
    (measured: 18 % of a POST expenditure's time on PostgreSQL, bench/README.md). A connection that
    was checked in less than ``idle_s`` ago was just working; one that rested longer (a database
    restart, an idle timeout in between) is pinged, and replaced if the ping fails. A connection
    that breaks while in use still fails its statement, and SQLAlchemy then renews the whole pool.
    """

    @event.listens_for(engine, "checkin")
    def _rested_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["ido_checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_rested(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("ido_checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_s:
            return  # new, or just used
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            if not getattr(dbapi_connection, "autocommit", True):
                dbapi_connection.rollback()  # the ping opened a transaction; leave none behind
        except Exception as error:  # noqa: BLE001 - any failure: let the pool open a new connection
            raise exc.DisconnectionError(f"stale pooled connection: {error}") from error
