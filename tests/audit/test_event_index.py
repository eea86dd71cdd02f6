"""The replay's on-disk index answers as the dicts it replaced, before and after a batch is written."""

from __future__ import annotations

import pytest

from services.audit.event_index import EventIndex
from services.ledger.read_side import Original


@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_ids_heads_and_originals_are_remembered_across_batches(batch_size: int) -> None:
    index = EventIndex(batch_size=batch_size)
    try:
        assert index.first_time("e1") is True
        assert index.first_time("e2") is True
        assert index.first_time("e1") is False
        assert index.head("s1") == 0
        index.set_head("s1", 1)
        index.set_head("s2", 4)
        index.set_head("s1", 2)
        original = Original(1250, "GM0363", "KVK-1", "Bibliotheek", "INV-1")
        index.remember_original("e1", original)
        index.remember_original("e2", Original(-5, None, None, None, None))
        for _ in range(3):  # whatever was flushed or not
            assert index.first_time("e2") is False
            assert (index.head("s1"), index.head("s2"), index.head("s3")) == (2, 4, 0)
            assert index.original("e1") == original
            assert index.original("e2") == Original(-5, None, None, None, None)
            assert index.original("e3") is None
            index.flush()
    finally:
        index.close()


def test_a_closed_index_refuses_further_use() -> None:
    index = EventIndex()
    index.close()
    with pytest.raises(Exception, match="closed"):
        index.first_time("e1")
