"""The one Idempotency-Key of the three services: a write sent twice (a timeout, a retry) runs once.

Every write route takes the optional header; the semantics per kind of write are in
docs/api/README.md (#idempotency-key). In short:

- **Key syntax**: 1 to 200 characters, none a control character (``KEY_PATTERN``), checked by
  ``check_key`` and by the marshmallow field ``key_field``; anything else is 422 naming the header.
- **Scope**: a key belongs to one caller (role and token subject) of one service.
- **Fingerprint**: SHA-256 over the method, the path with its query, and the body bytes
  (``request_fingerprint``). The same key with another request (another route or body) is 409.
- **Claim first**: before the view runs, a row (service, caller, key) is inserted; the database's
  primary key lets exactly one concurrent request have it. The others wait (bounded, ``WAIT_S``)
  and then get the stored answer; one whose claimant was refused (nothing stored, claim released)
  claims it itself and runs.
- **Stored answer**: the status and the JSON body text sent (``StoredAnswer``), for 2xx answers;
  a refusal (4xx) releases the claim, so a corrected request may use the key again. A replay is
  sent byte for byte with ``Idempotent-Replayed: true``.
- **A crash** between the work and the completion leaves the claim without an answer. A route whose
  command is idempotent by itself (the ledger's, whose event ids derive from the key: ``derived_id``)
  takes the claim over once it has waited ``WAIT_S``, runs again and answers as the first time; a
  payments or bridge route answers 409 "still running", and once the claim is ``ABANDONED_AFTER_S``
  old 409 "outcome unknown" for good, rather than risk paying twice.
- **Retention**: keys are kept for good (one short row per keyed write, beside events kept for good).

A ledger posting claims no row: its stream id derives from the key, so the event store's own
uniqueness is the claim, written in the same commit as the event (bench/README.md, row 1).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from flask import Flask, Response, current_app, make_response, request
from marshmallow import ValidationError, fields
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

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
EXTENSION_KEY = "ido.idempotency"
KEY_PATTERN = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,200}")
"""One key syntax for all: matched whole (``fullmatch``), so a trailing newline is not let through; no C0 or
C1 control character (a header arrives as Latin-1, so NEL ``\x85`` would otherwise pass)."""
KEY_RULE = "must be 1 to 200 characters, none of them a control character"
KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 200}

WAIT_S = 10.0
"""How long a request waits for a concurrent one with its key: longer than a command's own conflict
retries (services/common/retry.py, 5 s), so a waiting retry sees the first request's outcome."""
ABANDONED_AFTER_S = 60.0
"""A payment's claim without an answer this old belongs to a request that died (none runs this long)."""

DERIVED_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:ido-ledger:idempotency")
"""Unchanged since the ledger's first keyed write, so ids derived before stay the same."""


# -- key syntax ------------------------------------------------------------------------------------


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise InvalidInput(f"{HEADER} {KEY_RULE}", field=HEADER)
    return key


def _validate_key(key: str) -> None:
    if not KEY_PATTERN.fullmatch(key):
        raise ValidationError(KEY_RULE)


def key_field(description: str) -> fields.String:
    """The header as a marshmallow field (``data_key`` the header's name) for a headers schema."""
    return fields.String(
        data_key=HEADER,
        load_default=None,
        validate=_validate_key,
        metadata={"description": description, "minLength": 1, "maxLength": 200},
    )


KEY_TEXT = (
    "Optional: any unique string per intended write (e.g. a UUID), 1 to 200 characters, no control characters. "
    "A retry with the same key and the same request (method, path and body bytes) gets the first answer back "
    "(`Idempotent-Replayed: true`) and stores nothing; a concurrent one waits for the first; the same key with "
    "another request gets 409. A refused request (4xx) frees its key. Keys are kept for good. "
)
PAYMENT_KEY_TEXT = KEY_TEXT + (
    "Without a key a retry pays again. If the service stopped during the first request, its key answers 409 "
    "(outcome unknown) for good: check the events before paying with a new key."
)
RULED_KEY_TEXT = KEY_TEXT + "Without a key a retry is idempotent or refused by this write's own rules."


def header_doc(description: str) -> dict[str, Any]:
    """The header as an OpenAPI parameter, for routes whose view does not parse the key itself."""
    return {"in": "header", "name": HEADER, "required": False, "schema": KEY_SCHEMA, "description": description}


# -- fingerprint and derived ids -------------------------------------------------------------------


def fingerprint(*parts: bytes) -> str:
    """SHA-256 over the parts, each prefixed by its length (so no two splits of one text agree)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def request_fingerprint() -> str:
    return fingerprint(request.method.encode(), request.full_path.encode(), request.get_data(cache=True))


def derived_id(scope: str, operation: str, key: str, *parts: object) -> UUID:
    """An aggregate id that is a function of the key: a re-run of a keyed command finds its own events."""
    return uuid5(DERIVED_ID_NAMESPACE, "/".join([scope, operation, key, *(str(p) for p in parts)]))


# -- the claims ------------------------------------------------------------------------------------

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
_OPEN = _WHERE & request_keys.c.status.is_(None) & (request_keys.c.created_at == bindparam("k_claimed_at"))
_SELECT = select(
    request_keys.c.fingerprint, request_keys.c.status, request_keys.c.body, request_keys.c.created_at
).where(_WHERE)
_COMPLETE = (
    update(request_keys)
    .where(_WHERE & request_keys.c.status.is_(None))
    .values(status=bindparam("k_status"), body=bindparam("k_body"))
)
_TAKE_OVER = update(request_keys).where(_OPEN).values(created_at=bindparam("k_now"))
_RELEASE = delete(request_keys).where(_OPEN)


@dataclass(frozen=True)
class StoredAnswer:
    """What the first request with a key answered: sent again, byte for byte, to every retry."""

    status: int
    body: str


@dataclass(frozen=True)
class Claim:
    """This request holds the key; ``claimed_at`` tells its claim from a later one's."""

    claimed_at: datetime


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite keeps no zone


def _reused(key: str) -> Conflict:
    return Conflict(f"{HEADER} {key!r} was used before with another request; use a new key", field=HEADER)


class RequestKeys:
    def __init__(self, engine: Engine, service: str):
        self.engine = engine
        self.service = service
        metadata.create_all(engine)

    def _ids(self, caller: str, key: str) -> dict[str, Any]:
        return {"k_service": self.service, "k_caller": caller, "k_key": key}

    def _insert(self, caller: str, key: str, fingerprint: str) -> Claim | None:
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(request_keys).values(
                        service=self.service, caller=caller, idempotency_key=key, fingerprint=fingerprint,
                        created_at=now,
                    )
                )
        except IntegrityError:
            return None
        return Claim(now)

    def claim(self, caller: str, key: str, fingerprint: str, *, rerun_abandoned: bool = False) -> Claim | StoredAnswer:
        """A ``Claim``: run the command. A ``StoredAnswer``: the first answer, to send again.

        Raises ``Conflict`` for another request with the key, and for a claim that stays open longer
        than ``WAIT_S`` or was abandoned, unless ``rerun_abandoned`` (the command is idempotent by its
        derived ids): then this request takes the claim over and runs.
        """
        deadline = time.monotonic() + WAIT_S
        pause = 0.005
        while True:
            if (claimed := self._insert(caller, key, fingerprint)) is not None:
                return claimed
            with self.engine.connect() as connection:
                row = connection.execute(_SELECT, self._ids(caller, key)).first()
            if row is None and time.monotonic() < deadline:  # released in between (refused): claim it
                continue
            if row is None:
                raise Conflict(f"requests with {HEADER} {key!r} keep being refused; retry later", field=HEADER)
            if row.fingerprint != fingerprint:
                raise _reused(key)
            if row.status is not None:
                return StoredAnswer(int(row.status), str(row.body))
            abandoned = datetime.now(UTC) - _utc(row.created_at) > timedelta(seconds=ABANDONED_AFTER_S)
            if abandoned and not rerun_abandoned:
                raise Conflict(
                    f"the outcome of the request with {HEADER} {key!r} is unknown (the service stopped during "
                    "it): check the events before sending it again with a new key",
                    field=HEADER,
                )
            if abandoned or time.monotonic() >= deadline:
                if not rerun_abandoned:
                    raise Conflict(f"a request with {HEADER} {key!r} is still running; retry later", field=HEADER)
                # Waited long enough: its claimant is dead or slow; a re-run answers as it would.
                if (taken := self._take_over(caller, key, row.created_at)) is not None:
                    return taken
                continue
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _take_over(self, caller: str, key: str, stored_claimed_at: datetime) -> Claim | None:
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            taken = connection.execute(
                _TAKE_OVER, {**self._ids(caller, key), "k_claimed_at": stored_claimed_at, "k_now": now}
            ).rowcount
        return Claim(now) if taken == 1 else None

    def complete(self, caller: str, key: str, answer: StoredAnswer) -> None:
        with self.engine.begin() as connection:
            connection.execute(_COMPLETE, {**self._ids(caller, key), "k_status": answer.status, "k_body": answer.body})

    def release(self, caller: str, key: str, claim: Claim) -> None:
        """Frees the key of a request that stored nothing (only its own claim, never a later one)."""
        with self.engine.begin() as connection:
            connection.execute(_RELEASE, {**self._ids(caller, key), "k_claimed_at": claim.claimed_at})


def enable_request_keys(app: Flask, engine: Engine, service: str) -> None:
    app.extensions[EXTENSION_KEY] = RequestKeys(engine, service)


# -- the routes ------------------------------------------------------------------------------------


def _replay(stored: StoredAnswer) -> Response:
    replayed = Response(stored.body, status=stored.status, mimetype="application/json")
    replayed.headers[REPLAYED_HEADER] = "true"
    return replayed


def idempotent(*, rerun_abandoned: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wraps a route's whole view (put it right below ``@blp.route``): the answer kept is the body sent.

    ``rerun_abandoned``: the view's command finds its own earlier events by the key (derived ids), so
    running it again (after a crash, an unexpected error, or beside a slow first run) answers as the
    first run did.
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def keyed(*args: Any, **kwargs: Any) -> Any:
            key = request.headers.get(HEADER)
            if key is None:
                return view(*args, **kwargs)
            check_key(key)
            caller = principal()  # 401 before anything is claimed
            keys: RequestKeys = current_app.extensions[EXTENSION_KEY]
            caller_id = f"{caller.role}:{caller.subject}"
            outcome = keys.claim(caller_id, key, request_fingerprint(), rerun_abandoned=rerun_abandoned)
            if isinstance(outcome, StoredAnswer):
                return _replay(outcome)
            try:
                response = make_response(view(*args, **kwargs))
            except (ServiceError, HTTPException):
                keys.release(caller_id, key, outcome)  # refused before anything was stored
                raise
            except Exception:
                if rerun_abandoned:  # a re-run finds what this one stored: free the key at once
                    keys.release(caller_id, key, outcome)
                raise  # otherwise the claim stays: the outcome is unknown
            if response.status_code >= 400:
                keys.release(caller_id, key, outcome)
            else:
                keys.complete(caller_id, key, StoredAnswer(response.status_code, response.get_data(as_text=True)))
            return response

        return keyed

    return decorate
