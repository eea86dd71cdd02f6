"""Rows of another table written in the event store's own transaction (``Application.save(..., side_rows=)``).

A fact that must hold exactly when some events are stored (the ledger's recorded event ids, issue 17)
is written by the guarded recorders (``adapters/guarded_recorders.py``) after the events and their
guards, before the commit: one transaction and one fsync instead of a second commit per save, and no
window in which the events are stored and the fact is not. A row already present is left as it is.
The table is in the event store's database; its owner creates it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SIDE_ROWS = "side_rows"
"""The keyword of ``Application.save`` and of the guarded recorders' ``insert_events``."""

_NAME = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class SideRows:
    table: str
    columns: tuple[str, ...]
    rows: Sequence[tuple[Any, ...]]

    def __post_init__(self) -> None:
        # The names go into the SQL text: only plain identifiers, never a caller's input.
        for name in (self.table, *self.columns):
            if not _NAME.fullmatch(name):
                raise ValueError(f"not a plain SQL name: {name!r}")
