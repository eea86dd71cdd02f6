"""The refusal of a recovery (`ido recover`): nothing was written, and each line says why."""

from __future__ import annotations

from collections.abc import Sequence


class RecoveryRefused(Exception):
    def __init__(self, lines: Sequence[str]):
        super().__init__("; ".join(lines))
        self.lines = list(lines)
