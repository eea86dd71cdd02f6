"""Progress of long work (imports, replays, re-projections, benchmarks), on stderr.

At a terminal: a tqdm bar. Elsewhere (CI, a service's log, a pipe): one log line every
``log_every_s`` seconds and one at the end, through the ``ido.progress`` logger, so structured
logs keep working and no carriage returns end up in files. ``IDO_PROGRESS`` overrides the choice:
``bar``, ``log`` or ``off``.

    with Progress("replaying ido.grants.v1", total=count, unit="event") as progress:
        for message in messages:
            apply(message)
            progress.update()

    for row in track(rows, "importing annex", unit="row"):
        ...
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import IO, Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")
log = logging.getLogger("ido.progress")
MODES = ("auto", "bar", "log", "off")


def _mode(stream: IO[str], requested: str | None) -> str:
    mode = (requested or os.environ.get("IDO_PROGRESS") or "auto").lower()
    if mode not in MODES:
        mode = "auto"
    if mode == "auto":
        isatty = getattr(stream, "isatty", None)
        return "bar" if isatty is not None and isatty() else "log"
    return mode


class Progress:
    """A counter of done work with a total (or none: then rate and count only)."""

    def __init__(
        self,
        description: str,
        *,
        total: int | None = None,
        unit: str = "item",
        stream: IO[str] | None = None,
        mode: str | None = None,
        log_every_s: float = 10.0,
    ):
        self.description = description
        self.total = total
        self.unit = unit
        self.done = 0
        self.stream = stream or sys.stderr
        self.mode = _mode(self.stream, mode)
        self.log_every_s = log_every_s
        self.started = time.monotonic()
        self._last_log = self.started
        self._bar: Any = None
        if self.mode == "bar":
            self._bar = tqdm(
                total=total, desc=description, unit=unit, file=self.stream, dynamic_ncols=True, mininterval=0.2
            )

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "log":
            now = time.monotonic()
            if now - self._last_log >= self.log_every_s:
                self._last_log = now
                self._log("progress")

    def _log(self, what: str) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        of_total = f"/{self.total}" if self.total is not None else ""
        log.info(
            "%s: %s %s%s %ss (%.0f %s/s)",
            self.description,
            what,
            self.done,
            of_total,
            round(elapsed, 1),
            self.done / elapsed,
            self.unit,
            extra={"progress_done": self.done, "progress_total": self.total, "progress_unit": self.unit},
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "log":
            self._log("done")

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def track(iterable: Iterable[T], description: str, *, total: int | None = None, **options: Any) -> Iterator[T]:
    """Yields the items of ``iterable`` while counting them (total from ``len()`` when it has one);
    ``options`` are ``Progress``'s."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(description, total=total, **options) as progress:
        for item in iterable:
            yield item
            progress.update()
