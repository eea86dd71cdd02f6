"""Starting a forked process from a process that has threads, without handing it a lock a thread held;
and ending one that may be stuck.

A fork copies every lock as it is at that instant, held or not, and only the forking thread. A lock that
another thread held (it was writing a log line: the handler's lock, and inside it the output file's own
buffer lock, held through the ``write`` while the GIL is released) stays held in the child for good, by
a thread that is not there. The child's first log line to that file then waits forever. This happened:
the projector's reading process hung in its first line (kafka-python's SASL warning, in the consumer's
connect) because a thread of the parent was writing an access-log line when the projector forked it;
the reading process never said READY and the projector read nothing, silently (issue 17, twenty-fifth
round; two lost projections in 6 runs of tests/integration).

The logging module renews the handlers' own locks in the child (``os.register_at_fork``), but not the
buffer lock of the file a handler writes to. So ``start_forked`` holds every logging handler's lock while
it forks: no thread is inside a handler's write then, and no file lock is held for a handler's write. A
thread that writes to a file without logging is not covered; the services write only through logging.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

STACKS_SIGNAL = signal.SIGUSR1
"""Asks a stuck child (started through ``telling_its_stacks``) for its threads' stacks before it is killed."""

STACKS_WAIT_S = 0.5
"""How long a stuck child is given to write its stacks."""

STDERR_FD = 2
"""Where a child writes its stacks: the descriptor, whatever object ``sys.stderr`` is at the fork."""


def logging_handlers() -> list[logging.Handler]:
    """Every handler of the root logger and of each logger made so far, each once (by id: the same
    order in every thread, so two forking threads cannot hold some of each other's locks)."""
    loggers: list[Any] = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    found: dict[int, logging.Handler] = {}
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):  # a PlaceHolder has none
            found[id(handler)] = handler
    return [found[key] for key in sorted(found)]


@contextmanager
def handlers_held() -> Iterator[None]:
    """Holds every logging handler's lock: no thread of this process writes a log line meanwhile."""
    with ExitStack() as held:
        for handler in logging_handlers():
            if handler.lock is not None:
                handler.acquire()
                held.callback(handler.release)
        yield


def start_forked(process: Any) -> None:
    """``process.start()`` of a ``multiprocessing`` process of the fork context, while no thread logs.

    The child does not return from ``start``: only the parent releases the locks (the logging module
    renews them in the child)."""
    with handlers_held():
        process.start()


def telling_its_stacks(target: Callable[..., Any]) -> Callable[..., Any]:
    """``target`` of a forked child that writes its threads' stacks to its standard error when it gets
    ``STACKS_SIGNAL`` (faulthandler: from the signal handler, whatever lock its threads wait for), so that a child
    found stuck says where: a lock it inherited held, which ``start_forked`` does not cover, is otherwise untraceable
    (a reading process that never said READY in a run of `make test`, thirtieth round)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            # the descriptor, not sys.stderr: a caller may have replaced that with an object without one (a CLI
            # test's runner), and the child must start all the same
            faulthandler.register(STACKS_SIGNAL, file=STDERR_FD, all_threads=True)
        except (OSError, ValueError, RuntimeError):  # no standard error at all: no stacks, the child still runs
            pass
        return target(*args, **kwargs)

    return run


def end_forked(process: Any, wait_s: float, *, tell_stacks: bool = False) -> None:
    """Waits up to ``wait_s`` for ``process`` to end by itself, then kills it. Returns once it is gone (joined:
    no zombie is left). A stuck reading process does not end by itself, so every owner ends it this way. With
    ``tell_stacks`` (a child started through ``telling_its_stacks``), one still there after the wait is stuck:
    it is asked for its stacks before the kill."""
    process.join(timeout=max(0.0, wait_s))
    if tell_stacks and process.is_alive() and process.pid is not None:
        os.kill(process.pid, STACKS_SIGNAL)
        process.join(timeout=STACKS_WAIT_S)
    if process.is_alive():
        process.kill()
        process.join()
