"""The replay's memory of every event and every stream, kept on disk so that RAM stays flat.

The replay must remember every event id (a re-sent event counts once), the head of every stream
(an event waits for its predecessor) and line 1 of every applied event (a reversal undoes it).
All three grow with the length of the history, not with the number of balances: as dicts they
took ~2.3 KB per event (bench/README.md, row 6). Here they live in a private temporary SQLite
database, which SQLite deletes when the connection closes, with a capped page cache; new entries
wait in small dicts and are written in batches, so the per-event cost is one indexed lookup.
"""

from __future__ import annotations

import sqlite3

from services.ledger.read_side import Original

_SCHEMA = (
    "CREATE TABLE seen (event_id TEXT PRIMARY KEY) WITHOUT ROWID",
    "CREATE TABLE heads (stream_id TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE originals (event_id TEXT PRIMARY KEY, amount_cents INTEGER NOT NULL, municipality_code TEXT,"
    " counterparty_id TEXT, counterparty_name TEXT, reference TEXT) WITHOUT ROWID",
)


class EventIndex:
    def __init__(self, *, batch_size: int = 20_000, cache_mib: int = 16):
        # "" is SQLite's private temporary on-disk database: nobody else sees it, it is gone on close.
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        # Nothing here must survive a crash (the replay starts over), so no journal and no fsync.
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(f"PRAGMA cache_size = {-cache_mib * 1024}")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._batch_size = batch_size
        self._new_seen: set[str] = set()
        self._new_heads: dict[str, int] = {}
        self._new_originals: dict[str, Original] = {}

    def first_time(self, event_id: str) -> bool:
        """True once per event id; remembers it."""
        if event_id in self._new_seen:
            return False
        if self._db.execute("SELECT 1 FROM seen WHERE event_id = ?", (event_id,)).fetchone() is not None:
            return False
        self._new_seen.add(event_id)
        self._written()
        return True

    def head(self, stream_id: str) -> int:
        """The last position applied in the stream, 0 before its first."""
        position = self._new_heads.get(stream_id)
        if position is not None:
            return position
        row = self._db.execute("SELECT position FROM heads WHERE stream_id = ?", (stream_id,)).fetchone()
        return 0 if row is None else int(row[0])

    def set_head(self, stream_id: str, position: int) -> None:
        self._new_heads[stream_id] = position
        self._written()

    def original(self, event_id: str) -> Original | None:
        found = self._new_originals.get(event_id)
        if found is not None:
            return found
        row = self._db.execute(
            "SELECT amount_cents, municipality_code, counterparty_id, counterparty_name, reference"
            " FROM originals WHERE event_id = ?",
            (event_id,),
        ).fetchone()
        return None if row is None else Original(*row)

    def remember_original(self, event_id: str, original: Original) -> None:
        self._new_originals[event_id] = original
        self._written()

    def _written(self) -> None:
        if len(self._new_seen) + len(self._new_heads) + len(self._new_originals) >= self._batch_size:
            self.flush()

    def flush(self) -> None:
        db = self._db
        db.execute("BEGIN")
        db.executemany("INSERT INTO seen VALUES (?)", ((event_id,) for event_id in self._new_seen))
        db.executemany("INSERT OR REPLACE INTO heads VALUES (?, ?)", self._new_heads.items())
        db.executemany(
            "INSERT OR REPLACE INTO originals VALUES (?, ?, ?, ?, ?, ?)",
            ((event_id, *original) for event_id, original in self._new_originals.items()),
        )
        db.execute("COMMIT")
        self._new_seen.clear()
        self._new_heads.clear()
        self._new_originals.clear()

    def close(self) -> None:
        self._db.close()
