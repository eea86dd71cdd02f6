"""The replay's memory of every event and every stream, kept on disk so that RAM stays flat.

The replay must remember every event id (a re-sent event counts once), the head of every stream
(an event waits for its predecessor) and line 1 of every applied event (a reversal undoes it).
All three grow with the length of the history, not with the number of balances: as dicts they
took ~2.3 KB per event (bench/README.md, row 6). Here they live in a private temporary SQLite
database, which SQLite deletes when the connection closes, with a capped page cache; new entries
wait in small dicts and are written in batches.

Nearly every event of a history is new, and so is nearly every stream (each posting is a stream of
its own), so a lookup in the database would nearly always find nothing, and pay a walk down its
B-tree for it. A Bloom filter of fixed size in front of the database answers those "never seen"
without it: only a key the filter may hold (one seen before, or a rare false positive) is looked up.
The answers stay exact; the filter only saves the lookups.
"""

from __future__ import annotations

import sqlite3

from services.ledger.read_side import Original

_SCHEMA = (
    # one row per event id; the Original's columns are NULL until (unless) its line 1 is applied
    "CREATE TABLE events (event_id TEXT PRIMARY KEY, amount_cents INTEGER, municipality_code TEXT,"
    " counterparty_id TEXT, counterparty_name TEXT, reference TEXT) WITHOUT ROWID",
    "CREATE TABLE heads (stream_id TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID",
)
_NO_ORIGINAL = (None, None, None, None, None)

FILTER_BITS_LOG2 = 26
"""8 MiB of filter for event ids and stream ids together: at 10^6 events (2 * 10^6 keys) about one key
in 300 is a false positive, at 10^7 one in five, each costing one lookup that finds nothing."""


class KeyFilter:
    """A Bloom filter with two bits a key, both taken from the key's 64-bit ``hash`` (SipHash with
    this process's random key, so nobody can aim keys at one bit)."""

    def __init__(self, bits_log2: int = FILTER_BITS_LOG2):
        self._bits = bytearray(1 << (bits_log2 - 3))
        self._shift = bits_log2
        self._mask = (1 << bits_log2) - 1

    def add(self, key: str) -> bool:
        """Sets the key's bits; True when they were all set already (the key may have been added)."""
        h = hash(key)
        a = h & self._mask
        b = (h >> self._shift) & self._mask
        bits = self._bits
        byte_a, bit_a, byte_b, bit_b = a >> 3, 1 << (a & 7), b >> 3, 1 << (b & 7)
        if bits[byte_a] & bit_a and bits[byte_b] & bit_b:
            return True
        bits[byte_a] |= bit_a
        bits[byte_b] |= bit_b
        return False

    def may_hold(self, key: str) -> bool:
        h = hash(key)
        a = h & self._mask
        b = (h >> self._shift) & self._mask
        bits = self._bits
        return bool(bits[a >> 3] & (1 << (a & 7)) and bits[b >> 3] & (1 << (b & 7)))


class EventIndex:
    def __init__(self, *, batch_size: int = 20_000, cache_mib: int = 4, filter_bits_log2: int = FILTER_BITS_LOG2):
        # "" is SQLite's private temporary on-disk database: nobody else sees it, it is gone on close.
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        # Nothing here must survive a crash (the replay starts over), so no journal and no fsync.
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        # A small cache: the filter spares the lookups, and the batched inserts land on random pages of
        # a tree larger than any cache at 10^6 events; a large cache only made the RSS grow with history.
        self._db.execute(f"PRAGMA cache_size = {-cache_mib * 1024}")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._keys = KeyFilter(filter_bits_log2)
        """Every event id and stream id ever given: the ones not in it need no lookup."""
        self._batch_size = batch_size
        self._pending = 0
        self._new_events: dict[str, Original | None] = {}
        """Ids seen since the last flush, with their Original once remembered."""
        self._new_heads: dict[str, int] = {}
        self._late_originals: dict[str, Original] = {}
        """Originals of ids written before they were remembered (an event that waited for its predecessor)."""
        self._open = True

    def _closed(self) -> sqlite3.ProgrammingError:
        return sqlite3.ProgrammingError("the event index is closed")

    def first_time(self, event_id: str) -> bool:
        """True once per event id; remembers it."""
        if not self._open:
            raise self._closed()
        if event_id in self._new_events:
            return False
        if self._keys.add(event_id) and self._stored(event_id):
            return False
        self._new_events[event_id] = None
        self._pending += 1
        if self._pending >= self._batch_size:
            self.flush()
        return True

    def _stored(self, event_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone() is not None

    def head(self, stream_id: str) -> int:
        """The last position applied in the stream, 0 before its first."""
        if not self._open:
            raise self._closed()
        position = self._new_heads.get(stream_id)
        if position is not None:
            return position
        if not self._keys.may_hold(stream_id):
            return 0
        row = self._db.execute("SELECT position FROM heads WHERE stream_id = ?", (stream_id,)).fetchone()
        return 0 if row is None else int(row[0])

    def set_head(self, stream_id: str, position: int) -> None:
        if not self._open:
            raise self._closed()
        if stream_id not in self._new_heads:
            self._keys.add(stream_id)
            self._pending += 1
        self._new_heads[stream_id] = position
        if self._pending >= self._batch_size:
            self.flush()

    def original(self, event_id: str) -> Original | None:
        if not self._open:
            raise self._closed()
        if event_id in self._new_events:
            return self._new_events[event_id]
        found = self._late_originals.get(event_id)
        if found is not None:
            return found
        if not self._keys.may_hold(event_id):
            return None
        row = self._db.execute(
            "SELECT amount_cents, municipality_code, counterparty_id, counterparty_name, reference"
            " FROM events WHERE event_id = ?",
            (event_id,),
        ).fetchone()
        return None if row is None or row[0] is None else Original(*row)

    def remember_original(self, event_id: str, original: Original) -> None:
        if not self._open:
            raise self._closed()
        if event_id in self._new_events:
            self._new_events[event_id] = original
            return
        self._keys.add(event_id)
        self._late_originals[event_id] = original
        self._pending += 1
        if self._pending >= self._batch_size:
            self.flush()

    def flush(self) -> None:
        db = self._db
        db.execute("BEGIN")
        # in key order: neighbouring keys share B-tree pages (sorting the keys alone: strings sort fastest)
        events, heads = self._new_events, self._new_heads
        db.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
            ((event_id, *(events[event_id] or _NO_ORIGINAL)) for event_id in sorted(events)),
        )
        db.executemany("INSERT OR REPLACE INTO heads VALUES (?, ?)", ((s, heads[s]) for s in sorted(heads)))
        db.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO UPDATE SET"
            " amount_cents = excluded.amount_cents, municipality_code = excluded.municipality_code,"
            " counterparty_id = excluded.counterparty_id, counterparty_name = excluded.counterparty_name,"
            " reference = excluded.reference",
            ((event_id, *original) for event_id, original in sorted(self._late_originals.items())),
        )
        db.execute("COMMIT")
        self._new_events.clear()
        self._new_heads.clear()
        self._late_originals.clear()
        self._pending = 0

    def close(self) -> None:
        self._open = False
        self._db.close()
