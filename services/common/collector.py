"""The cyclic garbage collector of the processes that stream events: the relay and its page worker,
the projector and its checker, the audit replay and its checker, the gunicorn workers.

Each builds its code, settings and connections once, then handles a stream of short-lived objects (a
page's messages, a poll's records, a request). ``settle`` is called once that start-up is done:

- ``gc.freeze()``: what exists now lives as long as the process, so a full collection no longer walks it
  (~100,000 objects of imported code: the audit replay's full collections took ~0.8 s of a 6 s replay of
  10^5 events; bench/README.md, issue 17 sixth round). A forked child (the checkers) inherits the frozen
  heap and the thresholds.
- a young-generation threshold: CPython collects the young generation after a net growth of 700 tracked
  objects; a page or a poll holds tens of thousands of them while it is worked on, so each was walked
  again and again before it was dropped (the relay's page worker: 29 -> 17 µs CPU an event; the replay's
  young collections: ~0.4 s -> 0.02 s). At ``STREAM_YOUNG_THRESHOLD`` most of them are freed by their
  reference counts before a collection comes. Cycles are still collected, only later: a few megabytes at
  most wait for it. A server worker keeps CPython's threshold (``young_threshold=None``): there a young
  collection is a pause inside some request, and a request's objects are few (~2 µs of GC a posting).
"""

from __future__ import annotations

import gc

STREAM_YOUNG_THRESHOLD = 50_000
"""Net growth of tracked objects between two young-generation collections in a streaming process."""


def settle(young_threshold: int | None = STREAM_YOUNG_THRESHOLD) -> None:
    """Freezes what was built so far; sets the young generation's threshold (None: CPython's own)."""
    gc.collect()
    gc.freeze()
    if young_threshold is not None:
        _young, *older = gc.get_threshold()
        gc.set_threshold(young_threshold, *older)
