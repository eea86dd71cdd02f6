"""Idempotency-Key for the write endpoints that move money and have no natural key of their own:
an advance, a reclaim receipt, a bridge payment, a payment batch. Sent twice (a timeout, a retry),
such a request would pay twice; with the same key the second gets the first answer and records
nothing. (The ledger's postings derive their ids from the key instead: services/ledger/application.)

The key is claimed *before* the command runs, so two concurrent requests with one key cannot both
run. The claim is released when the command is refused (nothing was stored), and completed with the
answer when it succeeded. If the process dies between the command and the completion, the claim
stays: the key then answers 409 "outcome unknown" for good, rather than risk paying twice. The
caller looks at the grant's or library's events and, if the payment is not there, pays with a new
key.

A key belongs to one caller (the token's subject) and one service. The same key with another
request (method, path or body bytes) is refused with 409.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from flask import Flask, Response, current_app, make_response, request
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from services.common.errors import Conflict, InvalidInput, ServiceError
from services.common.http import principal

EXTENSION_KEY = "ido.request_keys"
HEADER = "Idempotency-Key"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")

HEADER_DOC = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    "description": (
        "Any unique string (e.g. a UUID) per intended payment. A retry with the same key and the same request "
        "gets the first answer back (header `Idempotent-Replayed: true`) and pays nothing; the same key with "
        "another request gets 409."
    ),
}

metadata = MetaData()

request_keys = Table(
    "http_idempotency_keys",
    metadata,
    Column("service", String(40), primary_key=True),
    Column("caller", String(200), primary_key=True),
    Column("idempotency_key", String(200), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", Integer, nullable=True),
    Column("body", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

_WHERE = (  # bind names unlike the columns': SQLAlchemy reserves those in UPDATE ... SET
    (request_keys.c.service == bindparam("k_service"))
    & (request_keys.c.caller == bindparam("k_caller"))
    & (request_keys.c.idempotency_key == bindparam("k_key"))
)
_SELECT = select(request_keys.c.fingerprint, request_keys.c.status, request_keys.c.body).where(_WHERE)
_COMPLETE = update(request_keys).where(_WHERE).values(status=bindparam("k_status"), body=bindparam("k_body"))
_RELEASE = delete(request_keys).where(_WHERE & request_keys.c.status.is_(None))


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: str


class RequestKeys:
    def __init__(self, engine: Engine, service: str):
        self.engine = engine
        self.service = service
        metadata.create_all(engine)

    def _ids(self, caller: str, key: str) -> dict[str, str]:
        return {"k_service": self.service, "k_caller": caller, "k_key": key}

    def claim(self, caller: str, key: str, fingerprint: str) -> StoredAnswer | None:
        """None: claimed, run the command. An answer: the first one, to send again."""
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(request_keys).values(
                        service=self.service, caller=caller, idempotency_key=key, fingerprint=fingerprint,
                        created_at=datetime.now(UTC),
                    )
                )
            return None
        except IntegrityError:
            pass
        with self.engine.connect() as connection:
            row = connection.execute(_SELECT, self._ids(caller, key)).first()
        if row is None:  # released in between: the other request was refused; try once more
            return self.claim(caller, key, fingerprint)
        if row.fingerprint != fingerprint:
            raise Conflict(f"{HEADER} {key!r} was used before with another request; use a new key", field=HEADER)
        if row.status is None:
            raise Conflict(
                f"a request with {HEADER} {key!r} is running, or its outcome is unknown (the service stopped "
                "during it): check the events before paying again with a new key",
                field=HEADER,
            )
        return StoredAnswer(int(row.status), str(row.body))

    def complete(self, caller: str, key: str, answer: StoredAnswer) -> None:
        with self.engine.begin() as connection:
            connection.execute(_COMPLETE, {**self._ids(caller, key), "k_status": answer.status, "k_body": answer.body})

    def release(self, caller: str, key: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(_RELEASE, self._ids(caller, key))


def enable_request_keys(app: Flask, engine: Engine, service: str) -> None:
    app.extensions[EXTENSION_KEY] = RequestKeys(engine, service)


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.full_path.encode(), request.get_data(cache=True)):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a route's whole view (put it right below ``@blp.route``): the answer kept is the JSON sent."""

    @wraps(view)
    def keyed(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not KEY_PATTERN.match(key):
            raise InvalidInput(f"{HEADER} must be 1 to 200 visible ASCII characters", field=HEADER)
        caller = principal()  # 401 / 403 before anything is claimed
        keys: RequestKeys = current_app.extensions[EXTENSION_KEY]
        caller_id = f"{caller.role}:{caller.subject}"
        stored = keys.claim(caller_id, key, _fingerprint())
        if stored is not None:
            replayed = Response(stored.body, status=stored.status, mimetype="application/json")
            replayed.headers["Idempotent-Replayed"] = "true"
            return replayed
        try:
            response = make_response(view(*args, **kwargs))
        except (ServiceError, HTTPException):
            keys.release(caller_id, key)  # refused before anything was stored
            raise
        if response.status_code >= 400:
            keys.release(caller_id, key)
        else:
            keys.complete(caller_id, key, StoredAnswer(response.status_code, response.get_data(as_text=True)))
        return response

    return keyed
