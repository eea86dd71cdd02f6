#!/usr/bin/env python3
"""Standalone verifier of the IDO grant ledger's signed tree heads and Merkle proofs.

One file, the Python standard library and the ``cryptography`` package only: an auditor copies it
anywhere and runs it without the project. It checks

* ``head``: a signed tree head (``ido-checkpoint/2``) against a trusted Ed25519 public key (PEM);
* ``inclusion``: an inclusion proof printed by ``ido audit prove EVENT_ID``: the head's signature,
  that the event's content gives the leaf (envelope hash, or Kafka key and value), and that the
  leaf sits at its position under the head's root;
* ``consistency``: a consistency proof printed by ``ido audit prove --consistency OLD NEW``: both
  heads' signatures and, per log, that the new tree extends the old one unchanged.

Usage::

    python3 ido_verify.py head        --public-key checkpoint_public.pem HEAD.json
    python3 ido_verify.py inclusion   --public-key checkpoint_public.pem PROOF.json [--head HEAD.json]
    python3 ido_verify.py consistency --public-key checkpoint_public.pem PROOF.json [--old OLD.json] [--new NEW.json]

Exit status: 0 verified, 1 a check failed, 2 usage error (a file missing or not of the expected
shape). The Merkle tree is RFC 9162's (Certificate Transparency 2.0, section 2.1): leaf hash
SHA-256(0x00 || leaf), node hash SHA-256(0x01 || left || right), the empty tree SHA-256("").

Leaves: a store log (``store:<service>``) has one leaf per stored event, in notification order,
whose input is the 32 bytes of the event's ``hash``; a topic log (``topic:<topic>/<partition>``)
has one leaf per message in offset order, whose input is ``message_leaf_input(key, value)``.
The project's ``contracts/merkle.py`` imports the hashing and verification below, so there is one
copy of this code.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HEAD_FORMAT = "ido-checkpoint/2"
INCLUSION_FORMAT = "ido-inclusion-proof/1"
CONSISTENCY_FORMAT = "ido-consistency-proof/1"

EMPTY_ROOT = hashlib.sha256(b"").digest()


# -- RFC 9162 hashing and proof verification ------------------------------------------------------


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


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


# -- leaves ---------------------------------------------------------------------------------------


def message_leaf_input(key: bytes | None, value: bytes | None) -> bytes:
    """A topic message's leaf input: SHA-256 over its key and value, each with its length.

    Each part is its length as 4 bytes big-endian then its bytes; an absent (null) part is the
    4 bytes ``ff ff ff ff``. So key and value are both covered and cannot trade bytes.
    """
    sha = hashlib.sha256()
    for part in (key, value):
        if part is None:
            sha.update(b"\xff\xff\xff\xff")
        else:
            sha.update(len(part).to_bytes(4, "big"))
            sha.update(part)
    return sha.digest()


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant white space, UTF-8, non-ASCII kept: the project's one rule."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def envelope_hash(envelope: dict[str, Any]) -> str:
    """An event envelope's hash: SHA-256 (hex) of the canonical JSON of the envelope without ``hash``."""
    return hashlib.sha256(canonical_json({k: v for k, v in envelope.items() if k != "hash"})).hexdigest()


# -- signed tree heads ----------------------------------------------------------------------------


class Unusable(ValueError):
    """A file is missing or not of the expected shape (exit status 2). A ``ValueError``, so the
    project's own commands report it like their other bad input."""


def load_public_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise Unusable(f"{path}: not a readable PEM public key ({error})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise Unusable(f"{path} is not an Ed25519 public key")
    return key


def key_id(public_key: Any) -> str:
    """SHA-256 (hex) of the raw 32-byte Ed25519 public key."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def signed_bytes(head: dict[str, Any]) -> bytes:
    """What the signature covers: the canonical JSON of the head without its ``signature``."""
    return canonical_json({k: v for k, v in head.items() if k != "signature"})


def head_problems(head: Any, public_key: Any) -> list[str]:
    """Why ``head`` is not a valid signed tree head by ``public_key`` (empty when it is)."""
    from cryptography.exceptions import InvalidSignature

    if not isinstance(head, dict) or head.get("format") != HEAD_FORMAT:
        found = head.get("format") if isinstance(head, dict) else type(head).__name__
        return [f"not a signed tree head of format {HEAD_FORMAT} (found {found!r})"]
    if head.get("key_id") != key_id(public_key):
        return [f"signed with key {head.get('key_id')}, not with the trusted key {key_id(public_key)}"]
    try:
        signature = base64.b64decode(str(head.get("signature", "")), validate=True)
        public_key.verify(signature, signed_bytes(head))
    except (InvalidSignature, binascii.Error, ValueError):
        return ["the signature does not match the head's content (the head was changed, or is not ours)"]
    problems = []
    logs = head.get("logs")
    if not isinstance(logs, dict):
        return ["the head has no logs"]
    for name, entry in logs.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("size"), int) and _is_hash(entry.get("root"))):
            problems.append(f"log {name}: size or root malformed")
    return problems


def _is_hash(value: Any) -> bool:
    try:
        return isinstance(value, str) and len(bytes.fromhex(value)) == 32
    except ValueError:
        return False


def _hashes(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list) or not all(_is_hash(v) for v in values):
        raise Unusable(f"{what}: expected a list of 64-digit hex hashes")
    return [bytes.fromhex(v) for v in values]


def _log(head: dict[str, Any], name: str) -> tuple[int, bytes] | None:
    entry = head["logs"].get(name)
    return None if entry is None else (entry["size"], bytes.fromhex(entry["root"]))


# -- the three checks -----------------------------------------------------------------------------


def check_head(head: Any, public_key: Any) -> tuple[list[str], list[str]]:
    problems = head_problems(head, public_key)
    if problems:
        return [], problems
    lines = [f"head of {head['created_at']}, key {head['key_id'][:16]}..., topic prefix {head.get('topic_prefix')!r}"]
    for name in sorted(head["logs"]):
        entry = head["logs"][name]
        lines.append(f"  {name}: {entry['size']} leaves, root {entry['root']}")
    if head.get("topics_error"):
        lines.append(f"  (no topic logs: {head['topics_error']})")
    return lines, []


def check_inclusion(document: Any, public_key: Any, pinned_head: Any = None) -> tuple[list[str], list[str]]:
    if not isinstance(document, dict) or document.get("format") != INCLUSION_FORMAT:
        raise Unusable(f"not an inclusion proof of format {INCLUSION_FORMAT}")
    head: Any = document.get("head")
    problems = head_problems(head, public_key)
    if problems:
        return [], [f"head: {p}" for p in problems]
    if pinned_head is not None and canonical_json(pinned_head) != canonical_json(head):
        return [], ["the proof is against another head than the one given with --head"]
    event_id = document.get("event_id")
    proofs = document.get("proofs")
    if not isinstance(proofs, list) or not proofs:
        raise Unusable("the proof holds no proofs")
    lines: list[str] = []
    for proof in proofs:
        name = proof.get("log")
        at = _log(head, name) if isinstance(name, str) else None
        if at is None:
            problems.append(f"{name}: the head has no such log")
            continue
        size, root = at
        index, claimed_size = proof.get("index"), proof.get("size")
        if not isinstance(index, int) or claimed_size != size:
            problems.append(f"{name}: the proof is for a tree of {claimed_size} leaves, the head has {size}")
            continue
        if not _is_hash(proof.get("leaf_input")):
            raise Unusable(f"{name}: leaf_input must be 64 hex digits")
        leaf = bytes.fromhex(proof["leaf_input"])
        content = _content_problem(proof, leaf, event_id)
        if content:
            problems.append(f"{name} position {index}: {content}")
            continue
        if verify_inclusion(leaf_hash(leaf), index, size, _hashes(proof.get("path"), f"{name} path"), root):
            where = proof.get("where") or f"position {index}"
            lines.append(f"event {event_id} is leaf {index} of {size} of {name} ({where}) under the signed root")
        else:
            problems.append(f"{name}: the path does not lead from leaf {index} to the head's root")
    return lines, problems


def _content_problem(proof: dict[str, Any], leaf: bytes, event_id: Any) -> str | None:
    """Ties the leaf to the event's content where the proof carries it."""
    envelope = proof.get("envelope")
    if envelope is not None:
        if not isinstance(envelope, dict) or envelope.get("event_id") != event_id:
            return "the envelope is not the event's"
        if envelope_hash(envelope) != envelope.get("hash"):
            return "the envelope's content does not give its hash"
        if bytes.fromhex(envelope["hash"]) != leaf:
            return "the envelope's hash is not the leaf"
    message = proof.get("message")
    if message is not None:
        try:
            key = None if message.get("key") is None else base64.b64decode(message["key"], validate=True)
            value = None if message.get("value") is None else base64.b64decode(message["value"], validate=True)
        except (binascii.Error, ValueError, AttributeError):
            return "the message's key or value is not base64"
        if message_leaf_input(key, value) != leaf:
            return "the message's key and value do not give the leaf"
        try:
            published = json.loads(value) if value is not None else None
        except ValueError:
            published = None
        if not isinstance(published, dict) or published.get("event_id") != event_id:
            return "the message is not the event's"
        if envelope_hash(published) != published.get("hash"):
            return "the message's envelope does not give its hash"
    return None


def check_consistency(
    document: Any, public_key: Any, pinned_old: Any = None, pinned_new: Any = None
) -> tuple[list[str], list[str]]:
    if not isinstance(document, dict) or document.get("format") != CONSISTENCY_FORMAT:
        raise Unusable(f"not a consistency proof of format {CONSISTENCY_FORMAT}")
    old: Any = document.get("old")
    new: Any = document.get("new")
    problems = [f"old head: {p}" for p in head_problems(old, public_key)]
    problems += [f"new head: {p}" for p in head_problems(new, public_key)]
    if problems:
        return [], problems
    for pinned, head, flag in ((pinned_old, old, "--old"), (pinned_new, new, "--new")):
        if pinned is not None and canonical_json(pinned) != canonical_json(head):
            problems.append(f"the proof's head is not the one given with {flag}")
    if old.get("topic_prefix") != new.get("topic_prefix"):
        problems.append("the heads are of different topic prefixes")
    if problems:
        return [], problems
    proofs = document.get("proofs")
    if not isinstance(proofs, dict):
        raise Unusable("the proof holds no proofs")
    lines: list[str] = []
    for name in sorted(old["logs"]):
        old_size, old_root = _log(old, name) or (0, EMPTY_ROOT)
        at = _log(new, name)
        if at is None:
            if old_size:
                problems.append(f"{name}: in the old head ({old_size} leaves), missing from the new one")
            continue
        new_size, new_root = at
        proof = proofs.get(name)
        if not isinstance(proof, dict) or (proof.get("old_size"), proof.get("new_size")) != (old_size, new_size):
            problems.append(f"{name}: no proof for sizes {old_size} -> {new_size}")
            continue
        if verify_consistency(old_size, new_size, _hashes(proof.get("path"), f"{name} path"), old_root, new_root):
            lines.append(f"{name}: {new_size} leaves extend the {old_size} of the old head unchanged")
        else:
            problems.append(f"{name}: the new tree of {new_size} does not extend the old tree of {old_size}")
    for name in sorted(set(new["logs"]) - set(old["logs"])):
        lines.append(f"{name}: new log ({new['logs'][name]['size']} leaves)")
    return lines, problems


# -- command line ---------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise Unusable(f"{path}: not a readable JSON file ({error})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ido_verify.py", description=(__doc__ or "").split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    head = commands.add_parser("head", help="check a signed tree head's signature")
    head.add_argument("file", type=Path)
    inclusion = commands.add_parser("inclusion", help="check an inclusion proof (ido audit prove EVENT_ID)")
    inclusion.add_argument("file", type=Path)
    inclusion.add_argument("--head", type=Path, help="a head you hold: the proof must be against exactly it")
    consistency = commands.add_parser("consistency", help="check a consistency proof (ido audit prove --consistency)")
    consistency.add_argument("file", type=Path)
    consistency.add_argument("--old", type=Path, help="the older head you hold")
    consistency.add_argument("--new", type=Path, help="the newer head you hold")
    for command in (head, inclusion, consistency):
        command.add_argument("--public-key", type=Path, required=True, help="the trusted Ed25519 public key (PEM)")
    args = parser.parse_args(argv)
    try:
        public_key = load_public_key(args.public_key)
        document = _read_json(args.file)
        if args.command == "head":
            lines, problems = check_head(document, public_key)
        elif args.command == "inclusion":
            pinned = _read_json(args.head) if args.head else None
            lines, problems = check_inclusion(document, public_key, pinned)
        else:
            old = _read_json(args.old) if args.old else None
            new = _read_json(args.new) if args.new else None
            lines, problems = check_consistency(document, public_key, old, new)
    except Unusable as error:
        print(f"ido_verify: {error}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    for problem in problems:
        print(f"FAILED {problem}")
    print("verified" if not problems else f"NOT verified: {len(problems)} problem(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
