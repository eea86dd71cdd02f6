"""The id a service gives each event it records: a UUID version 7 (RFC 9562), ordered by the time it was made.

Every view and store that keys rows by event id (the ledger's journal, the consumer's applied ids) then adds
each new event at the end of its index, where a random (version 4) id landed anywhere in it: a transaction of
thousands of events wrote nearly every page of those indexes, and the more history the more pages (issue 17,
eighteenth round, bench/README.md). The ids are still unguessable enough for what they are (74 random bits) and
still only an id: the envelope promises no order (consumers order by offset and ``stream_position``), and events
recorded before keep their version 4 ids. The counter within a millisecond is ``uuid_utils``' (the Rust ``uuid``
crate's, RFC 9562 method 1): ids made by one process increase even when the clock does not move.
"""

from __future__ import annotations

from uuid_utils.compat import uuid7


def new_event_id() -> str:
    """A fresh event id, as the envelope carries it (the UUID's canonical text)."""
    return str(uuid7())
