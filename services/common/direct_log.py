"""A frequent log line written straight to the services' own JSON handlers, past the logging module's record.

Each request logs one access line (services/common/http.py). Through ``Logger.log`` that line cost ~70 µs of
CPU a posting in place (issue 17: the record, the handlers' filters, the formatter reading every attribute of
the record), ~9 % of it. When every handler the line would reach is one of ours, a plain ``StreamHandler``
with our ``JsonFormatter`` and ``ContextFilter`` and nothing else in between, ``log_direct`` writes what that
handler would write, byte for byte (tests/foundation/test_direct_log.py holds the two equal), without making
the record. Any other set-up (another handler, a filter on a logger, the text format, a test's capture)
takes ``Logger.log`` as before, so no line is lost or changed by this shortcut.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from services.common.logging_setup import (
    _HANDLER_MARK,
    _STANDARD_ATTRIBUTES,
    REQUEST_ID,
    SERVICE,
    ContextFilter,
    JsonFormatter,
    json_line,
)


def _direct_handlers(logger: logging.Logger, level: int) -> list[logging.StreamHandler[Any]] | None:
    """The handlers a record of ``level`` from ``logger`` would reach, if all are ours and nothing filters
    on the way; else None (the line takes the logging module's way)."""
    found: list[logging.StreamHandler[Any]] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if not (
                type(handler) is logging.StreamHandler
                and getattr(handler, _HANDLER_MARK, False)
                and type(handler.formatter) is JsonFormatter
                and len(handler.filters) == 1
                and type(handler.filters[0]) is ContextFilter
            ):
                return None
            if level >= handler.level:
                found.append(handler)
        current = current.parent if current.propagate else None
    return found or None  # none: the logging module's last resort decides


def _message(msg: str, args: tuple[Any, ...]) -> str:
    """As ``LogRecord.getMessage`` reads it (a lone non-empty mapping is the arguments by name)."""
    if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        return str(msg) % args[0]
    return str(msg) % args if args else str(msg)


def log_direct(logger: logging.Logger, level: int, msg: str, args: tuple[Any, ...], extra: Mapping[str, Any]) -> None:
    """``logger.log(level, msg, *args, extra=extra)``, the same line on the same handlers."""
    if not logger.isEnabledFor(level):
        return
    handlers = _direct_handlers(logger, level)
    if handlers is None or not _STANDARD_ATTRIBUTES.isdisjoint(extra):  # the latter: makeRecord refuses it
        logger.log(level, msg, *args, extra=dict(extra))
        return
    created = time.time()
    attributes = dict(extra)
    # As ContextFilter sets them on the record: in place when present but None, else after the others.
    if attributes.get("request_id") is None:
        attributes["request_id"] = REQUEST_ID.get()
    if attributes.get("service") is None:
        attributes["service"] = SERVICE.get()
    line = json_line(created, logging.getLevelName(level), logger.name, _message(msg, args), attributes.items())
    for handler in handlers:
        handler.acquire()
        try:
            handler.stream.write(line + handler.terminator)
            handler.flush()
        except RecursionError:  # as StreamHandler.emit
            raise
        except Exception:  # as StreamHandler.emit: the handler's own error handling, with a record to name
            record = logger.makeRecord(logger.name, level, "(direct)", 0, msg, args, None, extra=dict(extra))
            handler.handleError(record)
        finally:
            handler.release()
