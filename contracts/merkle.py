"""Merkle trees in the shape of RFC 9162 (Certificate Transparency 2.0), section 2.1.

Leaf and node hashes are domain-separated (``0x00`` before a leaf, ``0x01`` before two children),
so no leaf can pose as an inner node. A tree over ``n`` leaves splits at the largest power of two
below ``n``; the root of an append-only sequence therefore commits to every leaf *and* its
position, and a consistency proof shows that a larger tree extends a smaller one unchanged.

This module imports only the standard library. The hashing and the two proof checks live in the
standalone verifier (``contracts/ido_verify.py``, one file an auditor runs without the project) and
are imported from there, so there is one copy of them; proof generation and the incremental root
are here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

# One copy of the hashing and of the proof checks: the standalone verifier's (stdlib only).
from contracts.ido_verify import EMPTY_ROOT, leaf_hash, node_hash, verify_consistency, verify_inclusion

__all__ = [
    "EMPTY_ROOT", "PackedHashes", "TreeBuilder", "consistency_proof", "inclusion_proof", "leaf_hash", "node_hash",
    "root_of", "root_of_leaf_hashes", "verify_consistency", "verify_inclusion",
]


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


def all_inclusion_paths(hashes: Sequence[bytes]) -> tuple[bytes, list[bytes]]:
    """(root, [PATH(i, D[n]) for every i]) of already hashed leaves, each path as its sibling hashes
    joined (leaf to root, 32 bytes each: what a proof header carries), hashing each node once (O(n)).

    The tree is built bottom-up, level by level: neighbours are paired, and a last node without a
    partner is carried up unchanged. That is exactly RFC 9162's left-balanced tree, so every path
    equals ``inclusion_proof(i, hashes)`` joined. The paths are then made top-down: a node's path is its
    sibling (if any) before its parent's path, so neighbours share what lies above them and a batch
    of 500 costs ~2n joins instead of a loop over each leaf's levels (issue 17, seventh round).
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
    paths = [b""]  # the root's: nothing above it
    for level in reversed(levels[:-1]):
        size, above_paths = len(level), paths
        paths = [(level[j ^ 1] if j ^ 1 < size else b"") + above_paths[j >> 1] for j in range(size)]
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


class TreeBuilder:
    """The root of a growing sequence of leaf hashes in O(log n) memory: leaves are added one by one."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []

    def add(self, hash_value: bytes) -> None:
        size, node = 1, hash_value
        while self._stack and self._stack[-1][0] == size:
            left_size, left = self._stack.pop()
            size, node = left_size + size, node_hash(left, node)
        self._stack.append((size, node))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        root = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            root = node_hash(left, root)
        return root


class PackedHashes(Sequence[bytes]):
    """32-byte hashes packed in one buffer (32 bytes each, no object per hash); slices are views."""

    def __init__(self, buffer: bytes | bytearray | memoryview = b"") -> None:
        self._view = memoryview(buffer)
        if len(self._view) % 32:
            raise ValueError("a packed hash buffer holds whole 32-byte hashes")

    def __len__(self) -> int:
        return len(self._view) // 32

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> PackedHashes: ...

    def __getitem__(self, index: int | slice) -> bytes | PackedHashes:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("packed hashes slice with step 1 only")
            return PackedHashes(self._view[start * 32 : max(start, stop) * 32])
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return bytes(self._view[index * 32 : index * 32 + 32])

    def __iter__(self) -> Iterator[bytes]:
        for offset in range(0, len(self._view), 32):
            yield bytes(self._view[offset : offset + 32])
