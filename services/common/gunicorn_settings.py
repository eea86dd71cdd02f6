"""The gunicorn settings of `ido serve`, in one place: the benchmark's reference servers run under the
same ones (bench/bare.py, bench/crud.py), so row 1 compares the route, not the server settings."""

from __future__ import annotations

import socket
from typing import Any

from services.common.collector import settle


def gunicorn_settings(bind: str, workers: int, threads: int) -> dict[str, Any]:
    return {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "accesslog": None,  # the service logs one line per request itself (services/common/http.py)
        # Each worker listens on a socket of its own and the kernel spreads new connections over them.
        # On one shared socket the worker that woke first took them: under 16 kept-alive connections one
        # worker served every request on one core while the other idled (issue 17, bench row 1).
        # SO_REUSEPORT lets another process of the same user bind the port too, silently: `refuse_a_taken_port`
        # runs first, so a second server (or a stale one) on the port fails loudly as without the option.
        "reuse_port": workers > 1,
        "post_worker_init": freeze_what_the_worker_built,
    }


def freeze_what_the_worker_built(_worker: Any) -> None:
    """Puts everything the worker built before its first request (the app, its schemas, the imported
    modules, the stores' pools) out of the collector's sight, as the projector does.

    A full collection walked all of it: ~90-130 ms in each worker under row 1's load, every few thousand
    requests, in both workers at about the same request (their heaps grow alike), each holding its
    requests and, inside a group commit, the other worker's writers. That was the write path's p99
    (~115 ms, p50 ~15; bench/README.md). Frozen, such a collection takes under a millisecond. The young
    generation keeps CPython's threshold: a request's objects are few, and a pause is a request's latency."""
    settle(young_threshold=None)


def refuse_a_taken_port(bind: str) -> None:
    """Raises ``SystemExit`` naming ``bind`` when a process listens there already, with or without
    SO_REUSEPORT: a plain bind is refused by both (TIME_WAIT connections are not in the way)."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as error:
            raise SystemExit(f"cannot serve on {bind}: {error.strerror} (another server listens there?)") from None
