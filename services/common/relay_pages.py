"""The relay's pages: stored events after a position, as the messages the relay sends (key, envelope bytes, headers).

Making a page (reading the store, decoding, encoding, checking record MACs, sealing) was ~40 % of the relay's
CPU and sending it through kafka-python the rest (bench row 2). ``WorkerPages`` makes the next page in a
child process (``services/common/entrypoints/relay_worker.py``) while this one is being sent, so the two
halves run on two cores; ``LocalPages`` makes each page in this process, when asked (tests, toys).
Either way a page holds the same messages: what is sent does not depend on where it was made.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from services.common.relay_message import relay_message
from services.common.signing import Sealer

log = logging.getLogger(__name__)

Message = tuple[bytes, bytes, list[tuple[str, bytes]]]
"""(key, value, headers) of one Kafka message."""

WORKER_START_TIMEOUT_S = 120.0
"""The child imports eventsourcing, the service's application and the signing code first (seconds on a busy host)."""


@dataclass(frozen=True)
class Page:
    after: int
    """The position the page was read after."""
    last_id: int
    """The notification id of its last event (``after`` when empty): the position to record once it is acked."""
    messages: list[Message]
    sealed: bool


def read_page(app: Application, sealer: Sealer | None, after: int, limit: int, batch_size: int) -> Page:
    """Up to ``limit`` stored events after ``after``, sealed in batches of ``batch_size`` (one seal each)."""
    notifications = app.recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)
    messages: list[Message] = []
    for start in range(0, len(notifications), batch_size):
        messages.extend(batch_messages(app.mapper, sealer, notifications[start : start + batch_size]))
    return Page(after, notifications[-1].id if notifications else after, messages, sealer is not None)


def batch_messages(mapper: Any, sealer: Sealer | None, notifications: Sequence[Notification]) -> list[Message]:
    """The messages of one seal batch: the envelope's canonical bytes, its type and id, and its seal headers."""
    recorded = [relay_message(mapper, notification) for notification in notifications]
    if sealer is not None:
        seals = sealer.seal([r[1] for r in recorded], [r[2] for r in recorded])
    else:
        seals = [[] for _ in recorded]
    return [
        (
            key.encode("utf-8"),
            value,
            [("event_type", envelope["event_type"].encode()), ("event_id", envelope["event_id"].encode()), *seal],
        )
        for (key, envelope, _mac, value), seal in zip(recorded, seals, strict=True)
    ]


class LocalPages:
    """Pages made in this process, when asked."""

    def __init__(self, app: Application, batch_size: int):
        self.app = app
        self.batch_size = batch_size

    def page(self, after: int, limit: int, sealer: Sealer | None) -> Page:
        return read_page(self.app, sealer, after, limit, self.batch_size)

    def prefetch(self, after: int, limit: int, sealer: Sealer | None) -> None:
        """Nothing ahead of time here."""

    def close(self) -> None:
        """Nothing to stop."""


@dataclass(frozen=True)
class WorkerSpec:
    """What the child needs to read and seal as the relay would: sent to it once, over its socket."""

    application: str
    """``module:qualname`` of the service's eventsourcing Application."""
    eventsourcing_env: dict[str, str]
    batch_size: int
    signing_dir: str | None
    service: str | None
    topic: str | None
    record_key: bytes | None
    log: tuple[str, str, str] | None = None
    """(IDO_LOG_FORMAT, IDO_LOG_LEVEL, service name) of the relay's logs, or None to leave logging alone."""


def worker_spec(
    application_class: type[Any],
    env: dict[str, str],
    batch_size: int,
    sealer: Sealer | None,
    log: tuple[str, str, str] | None = None,
) -> WorkerSpec:
    return WorkerSpec(
        application=f"{application_class.__module__}:{application_class.__qualname__}",
        eventsourcing_env=dict(env),
        batch_size=batch_size,
        signing_dir=str(sealer.keys.signing_dir) if sealer else None,
        service=sealer.service if sealer else None,
        topic=sealer.topic if sealer else None,
        record_key=sealer.record_key if sealer else None,
        log=log,
    )


class WorkerPages:
    """Pages made by a child process, one page ahead of the one being sent.

    The child only reads the store and seals; the position is still recorded here, after the broker's acks.
    A prefetched page is used only when it starts at the position asked for and is not empty, so after a
    failed page, or once caught up, the page is read again from the recorded position (nothing skipped).
    The child exits when this process goes away (its socket closes), so a killed relay leaves none behind.
    """

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._ahead: tuple[int, int, bool] | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (the benchmark reads its CPU time)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Starts the child now rather than at the first page (it takes a while to import)."""
        try:
            self._started()
        except BaseException:
            self.close()
            raise

    def page(self, after: int, limit: int, sealer: Sealer | None) -> Page:
        sealed = sealer is not None
        try:
            if self._ahead is not None:
                asked = self._ahead
                self._ahead = None
                found = self._receive()
                if asked == (after, limit, sealed) and found.messages:
                    return found
            self._ask(after, limit, sealed)
            return self._receive()
        except BaseException:
            self.close()  # the child may be gone or out of step: a new one next time
            raise

    def prefetch(self, after: int, limit: int, sealer: Sealer | None) -> None:
        if self._ahead is None:
            try:
                self._ask(after, limit, sealer is not None)
            except BaseException:
                self.close()
                raise
            self._ahead = (after, limit, sealer is not None)

    def close(self) -> None:
        connection, process = self._connection, self._process
        self._connection, self._process, self._ahead = None, None, None
        if connection is not None:
            connection.close()  # the child sees the end of its socket and exits
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _ask(self, after: int, limit: int, sealed: bool) -> None:
        self._started().send((after, limit, sealed))

    def _receive(self) -> Page:
        connection = self._started()
        if not connection.poll(WORKER_START_TIMEOUT_S):
            raise TimeoutError("relay worker: no page within the timeout")
        kind, content = connection.recv()
        if kind == "error":
            raise RuntimeError(f"relay worker: {content}")
        page: Page = content
        return page

    def _started(self) -> Connection:
        if self._connection is not None:
            return self._connection
        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "services.common.entrypoints.relay_worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=_child_env(),
            )
        finally:
            theirs.close()
        connection = Connection(ours.detach())
        connection.send(self.spec)
        if not connection.poll(WORKER_START_TIMEOUT_S):
            connection.close()
            raise TimeoutError("relay worker did not start")
        kind, content = connection.recv()
        if kind != "ready":
            connection.close()
            raise RuntimeError(f"relay worker: {content}")
        self._connection = connection
        log.info("relay worker %s started", self._process.pid)
        return connection


def _child_env() -> dict[str, str]:
    """This environment, with this package importable whatever the working directory (kept: relative paths)."""
    root = str(Path(__file__).resolve().parents[2])
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env
