"""The relay's page maker, a child of the relay (``services/common/relay_pages.py``, ``WorkerPages``).

``python -m services.common.entrypoints.relay_worker <fd>``: on the socket ``fd`` it gets a ``WorkerSpec``,
answers ("ready", None), then for each (after, limit, sealed) a ("page", Page) or ("error", text), until the
relay closes the socket (or dies). It never writes the store: the relay records its position itself.
"""

from __future__ import annotations

import importlib
import signal
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from services.common.collector import settle
from services.common.eventstore import build_application
from services.common.logging_setup import configure_logging
from services.common.relay_pages import WorkerSpec, read_page
from services.common.signing import Sealer, ServiceKeys


def _application_class(reference: str) -> type[Any]:
    module_name, _, qualname = reference.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def _sealer(spec: WorkerSpec) -> Sealer | None:
    if spec.signing_dir is None or spec.service is None or spec.topic is None or spec.record_key is None:
        return None
    keys = ServiceKeys(Path(spec.signing_dir), spec.service, [spec.topic])
    return Sealer(service=spec.service, topic=spec.topic, record_key=spec.record_key, keys=keys)


def serve(connection: Connection) -> None:
    spec: WorkerSpec = connection.recv()
    if spec.log is not None:
        log_format, log_level, service = spec.log
        configure_logging(log_format, log_level, service=service)  # the sealer's errors, as the relay logs
    try:
        app = build_application(_application_class(spec.application), spec.eventsourcing_env)
        sealer = _sealer(spec)
    except Exception as error:  # noqa: BLE001 - told to the relay, which raises it
        connection.send(("error", f"{type(error).__name__}: {error}"))
        return
    settle()  # each page is tens of thousands of objects, dropped once sent (services/common/collector.py)
    connection.send(("ready", None))
    try:
        while True:
            try:
                after, limit, sealed = connection.recv()
            except EOFError:
                return  # the relay closed its end, or died
            try:
                page = read_page(app, sealer if sealed else None, after, limit, spec.batch_size)
            except Exception as error:  # noqa: BLE001 - store down: the relay raises it and retries
                connection.send(("error", f"{type(error).__name__}: {error}"))
            else:
                connection.send(("page", page))
    except (BrokenPipeError, ConnectionResetError):
        return
    finally:
        app.close()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the relay, which closes this child
    serve(Connection(int(args[0])))


if __name__ == "__main__":
    main()
