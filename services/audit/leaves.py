"""The leaves of every log the checkpoints sign, beside the heads: ``<IDO_CHECKPOINT_DIR>/leaves.sqlite``.

One row per leaf: the log, its position, the leaf input (32 bytes), the event id and where it was
(notification id in a store, offset on a topic). The file is append-only: the checkpoint process
adds the leaves that are new since the rows it holds, after checking the current logs still start
with exactly those rows; rows are never changed or removed. A head of size ``n`` uses the first
``n`` rows of each log, and every user checks them against the head's signed root first, so the
file needs no trust of its own: it only lets ``verify --since`` name the first event that differs,
and ``prove`` build proofs without reading the whole history again.

One shared file rather than a copy per head: a head each minute over 10^6 events would otherwise
write ~100 MB a minute; this way each leaf is written once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from contracts.merkle import PackedHashes, TreeBuilder, leaf_hash

FILE_NAME = "leaves.sqlite"
_PAGE = 5_000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS leaves (log INTEGER NOT NULL, idx INTEGER NOT NULL, leaf BLOB NOT NULL,"
    " event_id TEXT, source INTEGER NOT NULL, PRIMARY KEY (log, idx)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS leaves_by_event ON leaves (event_id)",
)


class StoredLeaf(NamedTuple):
    position: int
    leaf: bytes
    event_id: str | None
    source: int
    """The notification id (store) or the offset (topic) the leaf had when it was written."""


class LeafFile:
    def __init__(self, path: Path, *, create: bool = False):
        self.path = path
        if not create and not path.exists():
            raise ValueError(f"leaves file {path} not found (give it with --leaves)")
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=60)
        self._db.execute("PRAGMA journal_mode = WAL")
        if create:
            for statement in _SCHEMA:
                self._db.execute(statement)
        self._log_ids: dict[str, int] = {}
        self._pending: list[tuple[int, int, bytes, str | None, int]] = []
        self._in_transaction = False

    # -- reading -----------------------------------------------------------------------------

    def _log_id(self, name: str, *, create: bool = False) -> int | None:
        found = self._log_ids.get(name)
        if found is not None:
            return found
        row = self._db.execute("SELECT id FROM logs WHERE name = ?", (name,)).fetchone()
        if row is None:
            if not create:
                return None
            row = (self._db.execute("INSERT INTO logs (name) VALUES (?)", (name,)).lastrowid,)
        self._log_ids[name] = int(row[0])
        return int(row[0])

    def count(self, name: str) -> int:
        log = self._log_id(name)
        if log is None:
            return 0
        self._flush()
        row = self._db.execute("SELECT MAX(idx) FROM leaves WHERE log = ?", (log,)).fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def rows(self, name: str, start: int = 0, stop: int | None = None) -> Iterator[StoredLeaf]:
        """The rows of positions ``start`` .. ``stop - 1`` in order, read a page at a time."""
        log = self._log_id(name)
        if log is None:
            return
        self._flush()
        position = start
        while stop is None or position < stop:
            limit = _PAGE if stop is None else min(_PAGE, stop - position)
            page = self._db.execute(
                "SELECT idx, leaf, event_id, source FROM leaves WHERE log = ? AND idx >= ? ORDER BY idx LIMIT ?",
                (log, position, limit),
            ).fetchall()
            for idx, leaf, event_id, source in page:
                yield StoredLeaf(idx, bytes(leaf), event_id, source)
            if len(page) < limit:
                return
            position = page[-1][0] + 1

    def row(self, name: str, index: int) -> StoredLeaf | None:
        return next(self.rows(name, index, index + 1), None)

    def prefix_root(self, name: str, size: int) -> bytes | None:
        """The root of the first ``size`` rows, None when the file holds fewer or they skip a position."""
        tree = TreeBuilder()
        for row in self.rows(name, 0, size):
            if row.position != tree.size:
                return None
            tree.add(leaf_hash(row.leaf))
        return tree.root() if tree.size == size else None

    def leaf_hashes(self, name: str, size: int) -> PackedHashes:
        """The leaf hashes of the first ``size`` rows, 32 bytes each (for proofs)."""
        buffer = bytearray()
        for row in self.rows(name, 0, size):
            if row.position * 32 != len(buffer):
                break
            buffer += leaf_hash(row.leaf)
        return PackedHashes(buffer)

    def find(self, event_id: str) -> list[tuple[str, StoredLeaf]]:
        self._flush()
        found = self._db.execute(
            "SELECT logs.name, idx, leaf, event_id, source FROM leaves JOIN logs ON logs.id = leaves.log"
            " WHERE event_id = ? ORDER BY logs.name, idx",
            (event_id,),
        ).fetchall()
        return [(name, StoredLeaf(idx, bytes(leaf), eid, source)) for name, idx, leaf, eid, source in found]

    def search(self, name: str, leaf: bytes, start: int, stop: int) -> int | None:
        """The first position in ``start .. stop - 1`` holding ``leaf`` (a scan of the log's rows)."""
        log = self._log_id(name)
        if log is None:
            return None
        row = self._db.execute(
            "SELECT MIN(idx) FROM leaves WHERE log = ? AND idx >= ? AND idx < ? AND leaf = ?",
            (log, start, stop, leaf),
        ).fetchone()
        return None if row[0] is None else int(row[0])

    # -- appending (one transaction per checkpoint) -------------------------------------------

    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        self._in_transaction = True

    def append(self, name: str, index: int, leaf: bytes, event_id: str | None, source: int) -> None:
        log = self._log_id(name, create=True)
        assert log is not None
        self._pending.append((log, index, leaf, event_id, source))
        if len(self._pending) >= _PAGE:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._db.executemany("INSERT INTO leaves VALUES (?, ?, ?, ?, ?)", self._pending)
            self._pending.clear()

    def discard(self, names: set[str], rows_before: dict[str, int]) -> None:
        """Forgets the rows of ``names`` appended in this transaction (their log could not be read whole)."""
        self._flush()
        for name in names:
            log = self._log_id(name)
            if log is not None:
                self._db.execute("DELETE FROM leaves WHERE log = ? AND idx >= ?", (log, rows_before.get(name, 0)))

    def commit(self) -> None:
        self._flush()
        self._db.execute("COMMIT")
        self._in_transaction = False

    def rollback(self) -> None:
        self._pending.clear()
        if self._in_transaction:
            self._db.execute("ROLLBACK")
            self._in_transaction = False
        self._log_ids.clear()

    def close(self) -> None:
        if self._in_transaction:
            self.rollback()
        self._db.close()
