"""``all_inclusion_paths`` (one tree for every leaf's path, as the relay seals a batch) against
``inclusion_proof`` (one path at a time, RFC 9162's recursion): the same siblings, joined."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from contracts.merkle import (
    EMPTY_ROOT,
    all_inclusion_paths,
    inclusion_proof,
    leaf_hash,
    root_of_leaf_hashes,
    verify_inclusion,
)


def _siblings(path: bytes) -> list[bytes]:
    return [path[i : i + 32] for i in range(0, len(path), 32)]


def _hashes(n: int) -> list[bytes]:
    return [leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(n)]


def test_every_size_up_to_70_gives_the_rfc_paths_and_root() -> None:
    for n in range(1, 71):
        hashes = _hashes(n)
        root, paths = all_inclusion_paths(hashes)
        assert root == root_of_leaf_hashes(hashes), n
        assert len(paths) == n
        for i, found in enumerate(paths):
            assert found == b"".join(inclusion_proof(i, hashes)), (n, i)
            assert verify_inclusion(hashes[i], i, n, _siblings(found), root)


@given(st.integers(min_value=1, max_value=600))
def test_random_sizes(n: int) -> None:
    hashes = _hashes(n)
    root, paths = all_inclusion_paths(hashes)
    assert root == root_of_leaf_hashes(hashes)
    for i in {0, n // 3, n // 2, n - 1}:
        assert paths[i] == b"".join(inclusion_proof(i, hashes))


def test_empty() -> None:
    assert all_inclusion_paths([]) == (EMPTY_ROOT, [])
