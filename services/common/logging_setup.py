"""Structured logs: one JSON object per line, with the request id and event ids, never a secret.

``configure_logging(settings)`` installs the handler on the root logger (``IDO_LOG_FORMAT=json``,
the default, or ``text`` for a person at a terminal; ``IDO_LOG_LEVEL``). Every record carries
``request_id`` while a request is served (see ``services/common/http.py``); pass event ids with
``extra={"event_ids": [...]}``. What is logged is a whitelist by construction: the message and
the ``extra`` fields a caller chose. Headers and bodies are never logged, and as a last line of
defence anything that looks like a bearer token, a JWT or a quoted password value is masked, and fields named like
secrets (authorization, token, password, cookie, secret) are dropped.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

import orjson

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("ido_request_id", default=None)
SERVICE: contextvars.ContextVar[str | None] = contextvars.ContextVar("ido_service", default=None)

_HANDLER_MARK = "_ido_handler"
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
_SECRET_KEY = re.compile(r"(authori[sz]ation|token|password|passwd|cookie|secret|private)", re.IGNORECASE)
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# A quoted password in a logged configuration: kafka-python's ``'sasl_plain_password': '...'`` (its admin
# client logs its configuration at DEBUG), or a JAAS ``password="..."``.
_PASSWORD_VALUE = re.compile(r"""(?i)(password['"]?\s*[:=]\s*)(['"])[^'"]*\2""")


def redact(text: str) -> str:
    """Masks bearer tokens, JWTs and quoted password values in a piece of text."""
    # Each pattern needs one of these words (any case covers the JWT's "eyJ"): most texts have none,
    # and three substring tests are a tenth of three regular-expression passes (issue 17).
    folded = text.lower()
    if "bearer" not in folded and "eyj" not in folded and "password" not in folded:
        return text
    text = _PASSWORD_VALUE.sub(r"\1\2[redacted]\2", text)
    return _JWT.sub("[redacted-jwt]", _BEARER.sub("Bearer [redacted]", text))


@functools.lru_cache(maxsize=1024)
def _secret_name(key: str) -> bool:
    """A field name like a secret's (the names are the code's own: a small set, so remembered)."""
    return _SECRET_KEY.search(key) is not None


_PLAIN = frozenset({int, float, bool, type(None)})
"""Types whose values go into a line as they are (exactly these: a subclass takes ``_clean``'s long way)."""


def _clean(value: Any) -> Any:
    # A log line's values are mostly texts and numbers, and lists of texts: these first, by their exact type
    # (a chain of isinstance against unions took ~0.6 µs a value, most of a request's log line; issue 17).
    kind = type(value)
    if kind is str:
        return redact(value)
    if kind in _PLAIN:
        return value
    if kind is list:
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items() if not _secret_name(str(k))}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact(str(value))


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``service`` of the current context to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        if getattr(record, "service", None) is None:
            record.service = SERVICE.get()
        return True


_SECOND: tuple[int, str] = (-1, "")
"""The last whole second a line was stamped with, and its text: lines come many a second."""


def _utc_milliseconds(created: float) -> str:
    """``created`` (seconds since the epoch) as ISO 8601 in UTC to the millisecond: 2026-12-05T17:43:21.123Z."""
    global _SECOND
    # As ``datetime.fromtimestamp`` reads it: the whole seconds, and the rest rounded (half to even) to microseconds.
    second = int(created)
    microsecond = round((created - second) * 1e6)
    if microsecond >= 1_000_000:
        second, microsecond = second + 1, microsecond - 1_000_000
    millisecond = microsecond // 1000
    known_second, text = _SECOND
    if second != known_second:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _SECOND = (second, text)  # one assignment of a tuple: a thread reads the old pair or the new, never half
    return f"{text}.{millisecond:03d}Z"


def json_line(
    created: float,
    levelname: str,
    logger_name: str,
    message: str,
    attributes: Iterable[tuple[str, Any]],
    exception: str | None = None,
) -> str:
    """The JSON line of one record: ``attributes`` are the record's (``vars(record).items()``); its
    standard ones, private ones, secret-like names and None values are left out."""
    entry: dict[str, Any] = {
        "ts": _utc_milliseconds(created),
        "level": levelname,
        "logger": logger_name,
        "message": redact(message),
    }
    for key, value in attributes:
        if value is None or key in _STANDARD_ATTRIBUTES or key[:1] == "_" or _secret_name(key):
            continue
        entry[key] = _clean(value)
    if exception is not None:
        entry["exception"] = redact(exception)
    try:
        # orjson: a third of the standard library's time for a request's line (issue 17). The entry
        # holds only what ``_clean`` made (texts, numbers, lists, dicts with text keys); what orjson
        # refuses (an integer beyond 64 bits, a lone surrogate) takes the standard library's way.
        return orjson.dumps(entry).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(entry, ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, service, request_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        return json_line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            vars(record).items(),
            self.formatException(record.exc_info) if record.exc_info else None,
        )


class TextFormatter(logging.Formatter):
    """For a terminal: the usual line, with the request id when there is one; tokens masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return redact(f"{line} [request {request_id}]" if request_id else line)


def log_handler(stream: IO[str] | None = None, log_format: str = "json") -> logging.Handler:
    """A stream handler with our formatter and context filter (tests attach one to read the lines)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    setattr(handler, _HANDLER_MARK, True)
    return handler


QUIETED_LOGGERS: dict[str, int] = {
    # Chatty libraries: their INFO lines are connection noise; warnings still come through.
    "kafka": logging.WARNING,
    "werkzeug": logging.WARNING,
    # kafka-python warns at every SASL login without TLS ("credentials in the clear"): SCRAM never sends
    # the password, and TLS (SASL_SSL) is the production deployment's choice (docs/decisions.md).
    "kafka.net.sasl": logging.ERROR,
}
"""The libraries' loggers ``configure_logging`` sets a level on."""


def configure_logging(
    log_format: str = "json", level: str | int = "INFO", stream: IO[str] | None = None, service: str | None = None
) -> logging.Handler:
    """Replaces the root logger's handlers with one of ours; call once at process start (the CLI)."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    handler = log_handler(stream, log_format)
    root.addHandler(handler)
    root.setLevel(level)
    if service:
        SERVICE.set(service)
    for name, quiet_level in QUIETED_LOGGERS.items():
        logging.getLogger(name).setLevel(quiet_level)
    # Where a line was logged from (file, line, function) is in none of our formats, yet the logging module
    # looks it up on the stack for every record: 1.6 % of a posting's instructions with its access-log line
    # (issue 17, sixth round). The logging HOWTO ("Optimization") names this switch for it.
    logging._srcfile = None
    # The thread and process names and ids stay looked up (the same section's other switches): gunicorn's own
    # lines in the same process show the process id, and its format fails on a record without one.
    return handler


def configure_from_settings(settings: Any, service: str | None = None) -> logging.Handler:
    """``configure_logging`` with ``IDO_LOG_FORMAT`` and ``IDO_LOG_LEVEL`` of the settings."""
    return configure_logging(settings.log_format, settings.log_level, service=service)
