"""The second reference of row 1: the same route storing each posting as one plain durable row.

What a naive CRUD service would do instead of event sourcing: parse the JSON body, one ``INSERT``
(the Idempotency-Key unique, so a retry is answered from the row) and a commit, then 201. No token
check, no validation, no hash chain, no outbox. It runs under the same gunicorn settings as
`ido serve` and writes to the same database as the project's row: PostgreSQL as configured (fsync
on), or a SQLite file in WAL mode with ``synchronous=FULL`` (every commit durable, as the event
store's). `python -m bench.crud --port P --workers W --threads T`, the store from the IDO_* settings.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request

from bench.bare import run_gunicorn
from services.common.config import Settings, load_settings

_TABLE = """CREATE TABLE IF NOT EXISTS crud_expenditures (
    expenditure_id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    municipality_code TEXT NOT NULL,
    body TEXT NOT NULL
)"""
_INSERT = (
    "INSERT INTO crud_expenditures (expenditure_id, idempotency_key, municipality_code, body) "
    "VALUES ({p}, {p}, {p}, {p}) ON CONFLICT (idempotency_key) DO NOTHING RETURNING expenditure_id"
)
_FIND = "SELECT expenditure_id FROM crud_expenditures WHERE idempotency_key = {p}"

Insert = Callable[[str, str, str, str], str]
"""(expenditure id, key, code, body) -> the id stored under the key (the first request's, on a retry)."""


def sqlite_insert(path: Path) -> Insert:
    """One connection per server thread (sqlite3 connections are not shared between threads)."""
    local = threading.local()
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute(_TABLE)
    statement, find = _INSERT.format(p="?"), _FIND.format(p="?")

    def insert(*values: str) -> str:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA synchronous=FULL")
            local.connection = connection
        connection.execute("BEGIN IMMEDIATE")
        stored = connection.execute(statement, values).fetchone() or connection.execute(find, values[1:2]).fetchone()
        connection.execute("COMMIT")
        return str(stored[0])

    return insert


def postgres_insert(settings: Settings, threads: int) -> Insert:
    import psycopg
    from psycopg_pool import ConnectionPool

    pg = settings.postgres
    assert pg is not None
    conninfo = psycopg.conninfo.make_conninfo(
        host=pg.host, port=pg.port, dbname=pg.dbname, user=pg.user, password=pg.password
    )
    with psycopg.connect(conninfo, autocommit=True) as setup:
        setup.execute(_TABLE)
    pool = ConnectionPool(conninfo, min_size=threads, max_size=threads, open=True)
    statement, find = _INSERT.format(p="%s"), _FIND.format(p="%s")

    def insert(*values: str) -> str:
        connection: AbstractContextManager[Any] = pool.connection()
        with connection as conn:  # commits on leaving: one durable commit per request
            stored = conn.execute(statement, values).fetchone() or conn.execute(find, values[1:2]).fetchone()
        return str(stored[0])

    return insert


def create_crud_app(make_insert: Callable[[], Insert]) -> Flask:
    """``make_insert`` runs in each gunicorn worker at its first request (connections do not survive a fork)."""
    app = Flask("crud")
    made: list[Insert] = []
    lock = threading.Lock()

    def insert(*values: str) -> str:
        if not made:
            with lock:
                if not made:
                    made.append(make_insert())
        return made[0](*values)

    @app.post("/v1/municipalities/<code>/expenditures")
    def _post(code: str) -> Response:
        body = request.get_json()
        expenditure_id = str(uuid.uuid4())
        key = request.headers.get("Idempotency-Key") or expenditure_id
        stored_id = insert(expenditure_id, key, code, json.dumps(body))
        response = jsonify(expenditure_id=stored_id, municipality_code=code, grant_year=body["grant_year"])
        response.status_code = 201
        return response

    @app.get("/healthz")
    def _healthz() -> Response:
        return jsonify(status="ok", service="crud")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="one durable row per posting (reference of bench row 1)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    settings = load_settings()

    def make_insert() -> Insert:
        if settings.postgres is not None:
            return postgres_insert(settings, args.threads)
        return sqlite_insert(settings.data_dir / "crud.sqlite")

    run_gunicorn(create_crud_app(make_insert), args.port, args.workers, args.threads)


if __name__ == "__main__":
    main()
