"""`ido audit prove`: inclusion proofs of one event and consistency proofs between two heads.

Both are built from the leaves file (``services/audit/leaves.py``) after checking its rows against
the head's signed root, and printed as JSON that ``contracts/ido_verify.py`` checks without the
project. An inclusion proof carries the event's content where it can be read (the stored envelope,
the Kafka message's key and value), so the verifier ties the leaf to the event itself.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from contracts.ido_verify import CONSISTENCY_FORMAT, INCLUSION_FORMAT, head_problems
from contracts.merkle import consistency_proof, inclusion_proof, leaf_hash, verify_consistency, verify_inclusion
from services.audit.checkpoint import head_paths, latest_head, leaves_file_for, read_head
from services.audit.leaves import LeafFile, StoredLeaf
from services.audit.logs import STORE, fetch_message, where
from services.audit.signing import load_public_key
from services.audit.sources import open_store
from services.common.config import Settings
from services.common.domain.chained import recorded_envelope


class ProofRefused(Exception):
    """No valid proof can be given (exit status 1)."""


def _head(settings: Settings, path: Path | None, public_key: Any) -> tuple[Path, dict[str, Any]]:
    if path is None:
        found = latest_head(settings.checkpoint_dir, public_key)
        if found is None:
            raise ValueError(
                f"no checkpoint signed by the checkpoint key in {settings.checkpoint_dir} "
                f"({len(head_paths(settings.checkpoint_dir))} files); run `ido audit checkpoint`"
            )
        return found
    head = read_head(path)
    problems = head_problems(head, public_key)
    if problems:
        raise ProofRefused(f"checkpoint {path}: " + "; ".join(problems))
    return path, head


def _hashes(leaves: LeafFile, head: dict[str, Any], name: str) -> Any:
    entry = head["logs"][name]
    hashes = leaves.leaf_hashes(name, entry["size"])
    if len(hashes) != entry["size"] or leaves.prefix_root(name, entry["size"]) != bytes.fromhex(entry["root"]):
        raise ProofRefused(f"{name}: the leaves file {leaves.path} does not match the head's signed root")
    return hashes


def _store_content(settings: Settings, service: str, row: StoredLeaf) -> dict[str, Any] | None:
    application = open_store(settings, service)
    try:
        found = application.recorder.select_notifications(start=row.source, limit=1)
        if not found or found[0].id != row.source:
            return None
        _key, envelope = recorded_envelope(application.mapper, found[0])
        return envelope if envelope.get("hash") == row.leaf.hex() else None
    finally:
        application.close()


def _message_content(settings: Settings, name: str, row: StoredLeaf) -> dict[str, Any] | None:
    from contracts.ido_verify import message_leaf_input

    found = fetch_message(settings, name, row.source)
    if found is None or message_leaf_input(*found) != row.leaf:
        return None
    key, value = found
    return {
        "key": None if key is None else base64.b64encode(key).decode("ascii"),
        "value": None if value is None else base64.b64encode(value).decode("ascii"),
    }


def prove_inclusion(
    settings: Settings,
    event_id: str,
    *,
    checkpoint: Path | None = None,
    public_key_file: Path | None = None,
    leaves_file: Path | None = None,
    with_content: bool = True,
) -> dict[str, Any]:
    public_key = load_public_key(public_key_file or settings.checkpoint_public_key_file)
    path, head = _head(settings, checkpoint, public_key)
    leaves = LeafFile(leaves_file_for(settings, path, leaves_file))
    try:
        rows = [(name, row) for name, row in leaves.find(event_id)
                if name in head["logs"] and row.position < head["logs"][name]["size"]]
        if not rows:
            raise ProofRefused(
                f"event {event_id} is not covered by the checkpoint {path} of {head['created_at']} "
                "(a later checkpoint will cover an event recorded or published after it)"
            )
        proofs = []
        for name, row in rows:
            hashes = _hashes(leaves, head, name)
            path_hashes = inclusion_proof(row.position, hashes)
            root = bytes.fromhex(head["logs"][name]["root"])
            if not verify_inclusion(leaf_hash(row.leaf), row.position, len(hashes), path_hashes, root):
                raise ProofRefused(f"{name}: the proof does not verify against the head (the leaves file is wrong)")
            proof: dict[str, Any] = {
                "log": name, "index": row.position, "size": len(hashes), "where": where(name, row.source),
                "leaf_input": row.leaf.hex(), "path": [h.hex() for h in path_hashes],
            }
            if with_content:
                if name.startswith(STORE):
                    envelope = _store_content(settings, name[len(STORE):], row)
                    if envelope is not None:
                        proof["envelope"] = envelope
                else:
                    message = _message_content(settings, name, row)
                    if message is not None:
                        proof["message"] = message
            proofs.append(proof)
    finally:
        leaves.close()
    return {"format": INCLUSION_FORMAT, "event_id": event_id, "checkpoint": path.name, "head": head, "proofs": proofs}


def prove_consistency(
    settings: Settings,
    old_path: Path,
    new_path: Path,
    *,
    public_key_file: Path | None = None,
    leaves_file: Path | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The proof document and the logs whose new tree does not extend the old one."""
    public_key = load_public_key(public_key_file or settings.checkpoint_public_key_file)
    _, old = _head(settings, old_path, public_key)
    _, new = _head(settings, new_path, public_key)
    problems: list[str] = []
    if old.get("topic_prefix") != new.get("topic_prefix"):
        raise ProofRefused("the two checkpoints are of different topic prefixes")
    leaves = LeafFile(leaves_file_for(settings, new_path, leaves_file))
    proofs: dict[str, Any] = {}
    try:
        for name in sorted(old["logs"]):
            old_size, old_root = old["logs"][name]["size"], bytes.fromhex(old["logs"][name]["root"])
            if name not in new["logs"]:
                if old_size:
                    problems.append(f"{name}: in the old checkpoint ({old_size} leaves), missing from the new one")
                continue
            hashes = _hashes(leaves, new, name)
            if old_size > len(hashes):
                problems.append(f"{name}: the new checkpoint holds {len(hashes)} leaves, the old one {old_size}")
                continue
            path_hashes = consistency_proof(old_size, hashes)
            proofs[name] = {"old_size": old_size, "new_size": len(hashes), "path": [h.hex() for h in path_hashes]}
            new_root = bytes.fromhex(new["logs"][name]["root"])
            if not verify_consistency(old_size, len(hashes), path_hashes, old_root, new_root):
                problems.append(f"{name}: the new tree of {len(hashes)} does not extend the old tree of {old_size}")
    finally:
        leaves.close()
    return {"format": CONSISTENCY_FORMAT, "old": old, "new": new, "proofs": proofs}, problems
