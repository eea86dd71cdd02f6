"""The Merkle tree against a direct transcription of RFC 9162's recursive definitions."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    root_of_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    """MTH as RFC 9162 section 2.1.1 writes it, recursion and all."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _k(len(leaves))
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _k(len(leaves))
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = _k(n)
    if m <= k:
        return subproof(m, leaves[:k], complete) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


LEAVES = st.lists(st.binary(min_size=0, max_size=8), min_size=1, max_size=70)


@settings(max_examples=300, deadline=None)
@given(LEAVES)
def test_root_is_rfc_mth(leaves: list[bytes]) -> None:
    assert root_of(leaves) == mth(leaves)


def test_empty_tree_and_domain_separation() -> None:
    assert root_of([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    # A leaf that spells two children is still a leaf: its hash differs from their node's.
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert root_of([left + right]) != node_hash(left, right)


@settings(max_examples=300, deadline=None)
@given(LEAVES, st.data())
def test_inclusion_proofs(leaves: list[bytes], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    hashes = [leaf_hash(leaf) for leaf in leaves]
    proof = inclusion_proof(index, hashes)
    assert proof == path(index, leaves)
    root = root_of_leaf_hashes(hashes)
    assert verify_inclusion(hashes[index], index, len(leaves), proof, root)
    assert not verify_inclusion(leaf_hash(leaves[index] + b"x"), index, len(leaves), proof, root)
    if len(leaves) > 1:
        other = (index + 1) % len(leaves)
        assert not verify_inclusion(hashes[index], other, len(leaves), proof, root) or hashes[index] == hashes[other]


@settings(max_examples=300, deadline=None)
@given(LEAVES, st.data())
def test_consistency_proofs(leaves: list[bytes], data: st.DataObject) -> None:
    old_size = data.draw(st.integers(1, len(leaves)))
    hashes = [leaf_hash(leaf) for leaf in leaves]
    proof = consistency_proof(old_size, hashes)
    if old_size < len(leaves):
        assert proof == subproof(old_size, leaves, True)
    old_root, new_root = mth(leaves[:old_size]), mth(leaves)
    assert verify_consistency(old_size, len(leaves), proof, old_root, new_root)
    # A changed leaf inside the old tree breaks the proof, whichever leaf it is.
    changed = data.draw(st.integers(0, old_size - 1))
    tampered = list(leaves)
    tampered[changed] = leaves[changed] + b"!"
    assert not verify_consistency(old_size, len(leaves), proof, mth(tampered[:old_size]), new_root)
    assert not verify_consistency(
        old_size, len(leaves), consistency_proof(old_size, [leaf_hash(x) for x in tampered]), old_root, mth(tampered)
    )
