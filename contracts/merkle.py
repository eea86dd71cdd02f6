"""Merkle trees in the shape of RFC 9162 (Certificate Transparency 2.0), section 2.1.

Leaf and node hashes are domain-separated (``0x00`` before a leaf, ``0x01`` before two children),
so no leaf can pose as an inner node. A tree over ``n`` leaves splits at the largest power of two
below ``n``; the root of an append-only sequence therefore commits to every leaf *and* its
position, and a consistency proof shows that a larger tree extends a smaller one unchanged.

This module imports only the standard library: the project's audit tools use it, and the standalone
verifier (``contracts/ido_verify.py``) is built on the same functions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (``size`` >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def root_of_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """The tree head of already hashed leaves, in O(n) time and O(log n) memory."""
    if not hashes:
        return EMPTY_ROOT
    # Complete subtrees of decreasing size, as in a binary counter: merging equal-sized
    # neighbours gives exactly RFC 9162's left-balanced split.
    stack: list[tuple[int, bytes]] = []
    for value in hashes:
        size, node = 1, value
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, node = left_size + size, node_hash(left, node)
        stack.append((size, node))
    _, root = stack.pop()
    while stack:
        _, left = stack.pop()
        root = node_hash(left, root)
    return root


def root_of(leaves: Sequence[bytes]) -> bytes:
    return root_of_leaf_hashes([leaf_hash(leaf) for leaf in leaves])


def inclusion_proof(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 PATH(m, D[n]): the sibling roots from leaf ``index`` up to the root."""
    if not 0 <= index < len(hashes):
        raise ValueError(f"leaf index {index} outside a tree of {len(hashes)}")
    path: list[bytes] = []
    low, high = 0, len(hashes)
    while high - low > 1:
        k = _split(high - low)
        if index < low + k:
            path.append(root_of_leaf_hashes(hashes[low + k : high]))
            high = low + k
        else:
            path.append(root_of_leaf_hashes(hashes[low : low + k]))
            low = low + k
    path.reverse()
    return path


def all_inclusion_proofs(hashes: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """(root, [PATH(i, D[n]) for every i]) of already hashed leaves, hashing each node once (O(n)).

    The tree is built bottom-up, level by level: neighbours are paired, and a last node without a
    partner is carried up unchanged. That is exactly RFC 9162's left-balanced tree, so every path
    equals ``inclusion_proof(i, hashes)`` (leaf to root), at the cost of one tree for all of them.
    """
    if not hashes:
        return EMPTY_ROOT, []
    levels: list[list[bytes]] = [list(hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        above = [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])
        levels.append(above)
    paths: list[list[bytes]] = []
    for index in range(len(hashes)):
        path: list[bytes] = []
        position = index
        for level in levels[:-1]:
            sibling = position ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            position >>= 1
        paths.append(path)
    return levels[-1][0], paths


def consistency_proof(old_size: int, hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 PROOF(m, D[n]): shows the first ``old_size`` leaves are the tree of ``old_size``."""
    size = len(hashes)
    if not 0 <= old_size <= size:
        raise ValueError(f"old size {old_size} outside 0..{size}")
    if old_size in (0, size):
        return []
    proof: list[bytes] = []
    low, high, complete = 0, size, True
    m = old_size
    while True:
        n = high - low
        if m == n:
            if not complete:
                proof.append(root_of_leaf_hashes(hashes[low:high]))
            break
        k = _split(n)
        if m <= k:
            proof.append(root_of_leaf_hashes(hashes[low + k : high]))
            high = low + k
        else:
            proof.append(root_of_leaf_hashes(hashes[low : low + k]))
            low, m, complete = low + k, m - k, False
    proof.reverse()
    return proof


def verify_inclusion(
    leaf_hash_value: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    result = leaf_hash_value
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> bool:
    """RFC 9162 section 2.1.4.2 (with the trivial cases of an empty or equal old tree)."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for node in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(node, fr)
            sr = node_hash(node, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, node)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
