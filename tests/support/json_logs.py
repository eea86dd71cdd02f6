"""The services' JSON log lines of a test, read from the root logger."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from services.common.logging_setup import log_handler


@contextmanager
def json_lines_on_root(level: int) -> Iterator[io.StringIO]:
    """Our JSON handler on the root logger, and the root at ``level``, within; both as before after."""
    stream = io.StringIO()
    handler = log_handler(stream, "json")
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
