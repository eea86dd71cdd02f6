"""The leaves file and the per-log tally: memory stays flat whatever the length of a log."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

from contracts.merkle import root_of
from services.audit.checkpoint import LogTally
from services.audit.leaves import LeafFile
from services.audit.logs import Leaf


def leaves(count: int, salt: bytes = b"") -> list[Leaf]:
    return [Leaf(hashlib.sha256(salt + n.to_bytes(8, "big")).digest(), f"event-{n}", n + 1) for n in range(count)]


def test_a_long_log_is_tallied_and_written_in_flat_memory(tmp_path: Path) -> None:
    count = 60_000
    file = LeafFile(tmp_path / "leaves.sqlite", create=True)
    file.begin()
    tally = LogTally("store:ledger", sink=lambda name, i, leaf: file.append(name, i, leaf.input, leaf.event_id,
                                                                           leaf.source))
    tracemalloc.start()
    for n in range(count):  # made one at a time, as the store is read
        tally.feed(Leaf(hashlib.sha256(n.to_bytes(8, "big")).digest(), f"event-{n}", n + 1))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    file.commit()
    assert not tally.finish() and tally.size == count
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for {count} leaves"
    assert file.count("store:ledger") == count
    assert file.prefix_root("store:ledger", count) == tally.root()
    assert file.find("event-77")[0][1].position == 77
    file.close()


def test_the_first_difference_is_classified(tmp_path: Path) -> None:
    reference = leaves(10)
    file = LeafFile(tmp_path / "leaves.sqlite", create=True)
    file.begin()
    for i, leaf in enumerate(reference):
        file.append("store:x", i, leaf.input, leaf.event_id, leaf.source)
    file.commit()
    root = root_of([leaf.input for leaf in reference])
    extra = leaves(1, b"extra")[0]

    def first(current: list[Leaf]) -> tuple[int | None, str, str | None]:
        tally = LogTally("store:x", reference=file, reference_size=10, covered=(10, root))
        for leaf in current:
            tally.feed(leaf)
        finding = tally.finish()[0]
        return finding.index, finding.kind, finding.event_id

    assert first(reference[:4] + [extra] + reference[4:]) == (4, "inserted", extra.event_id)
    assert first(reference[:4] + reference[5:]) == (4, "removed", "event-4")
    assert first(reference[:4] + [reference[7]] + reference[5:7] + [reference[4]] + reference[8:]) == (
        4, "reordered", "event-7")
    assert first(reference[:3] + [reference[4], reference[3]] + reference[5:]) == (3, "reordered", "event-4")
    assert first(reference[:6] + [extra] + reference[7:]) == (6, "changed", extra.event_id)
    assert first(reference[:8]) == (8, "removed", "event-8")
    extended = LogTally("store:x", reference=file, reference_size=10, covered=(10, root))
    for leaf in reference + [extra]:
        extended.feed(leaf)
    assert extended.finish() == [] and extended.size == 11
    file.close()
