"""Idempotency keys: a retried request gets its first answer back and records nothing new.

The key table is a side table (service DB). It cannot share a transaction with the event store,
so the aggregate ids of a keyed request are derived from (municipality, operation, key): after a
crash between saving the events and saving the key, the retry finds the events and answers the same.
A posting (one expenditure) goes further and needs no row here at all: its stream id *is* its key,
so the event store's uniqueness records the key in the event's own commit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, String, Table, Text, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from contracts.canonical import canonical_json

KEY_NAMESPACE = uuid5(NAMESPACE_URL, "urn:ido-ledger:idempotency")

metadata = MetaData()

idempotency_keys = Table(
    "ledger_idempotency_keys",
    metadata,
    Column("municipality_code", String(6), primary_key=True),
    Column("operation", String(40), primary_key=True),
    Column("idempotency_key", String(200), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


# Built once: constructing a statement per call cost more CPU than running it (bench/README.md).
_SELECT_KEY = select(idempotency_keys).where(
    idempotency_keys.c.municipality_code == bindparam("municipality_code"),
    idempotency_keys.c.operation == bindparam("operation"),
    idempotency_keys.c.idempotency_key == bindparam("idempotency_key"),
)
_INSERT_KEY = insert(idempotency_keys)


def fingerprint(request: Any) -> str:
    return hashlib.sha256(canonical_json(request)).hexdigest()


def derived_id(municipality_code: str, operation: str, key: str, *parts: object) -> UUID:
    name = "/".join([municipality_code, operation, key, *(str(p) for p in parts)])
    return uuid5(KEY_NAMESPACE, name)


@dataclass(frozen=True)
class StoredAnswer:
    fingerprint: str
    status: int
    response: dict[str, Any]


class IdempotencyStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        metadata.create_all(engine)
        # One statement each, so each is its own transaction: no BEGIN / ROLLBACK / COMMIT round trips.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def get(self, municipality_code: str, operation: str, key: str) -> StoredAnswer | None:
        with self._autocommit.connect() as connection:
            row = connection.execute(
                _SELECT_KEY, {"municipality_code": municipality_code, "operation": operation, "idempotency_key": key}
            ).first()
        if row is None:
            return None
        return StoredAnswer(row.fingerprint, row.status, json.loads(row.response))

    def put(self, municipality_code: str, operation: str, key: str, answer: StoredAnswer) -> StoredAnswer:
        """Stores the answer; when another request stored one first, returns that one instead."""
        try:
            with self._autocommit.connect() as connection:
                connection.execute(
                    _INSERT_KEY,
                    {
                        "municipality_code": municipality_code,
                        "operation": operation,
                        "idempotency_key": key,
                        "fingerprint": answer.fingerprint,
                        "status": answer.status,
                        "response": json.dumps(answer.response, sort_keys=True),
                        "created_at": datetime.now(UTC),
                    },
                )
        except IntegrityError:
            stored = self.get(municipality_code, operation, key)
            if stored is None:  # pragma: no cover - the row that clashed cannot vanish
                raise
            return stored
        return answer
