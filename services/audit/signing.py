"""The checkpoint signing key: its own files, used only by the checkpoint command and process.

The private key (``IDO_CHECKPOINT_KEY_FILE``, mode 0600) is created once, atomically and
exclusively: written to a fresh temporary file opened with ``O_CREAT | O_EXCL`` and linked into
place with ``os.link``, which fails rather than replace a key another process made meanwhile. A
missing public file is derived again from the private key; a private key is never made anew
because its public file is missing, and a public key without its private key is an error (a new
key would silently change the key id every auditor trusts).
"""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.ido_verify import key_id, load_public_key  # one loader: the standalone verifier's
from services.common.secret_files import create_exclusive

log = logging.getLogger(__name__)

__all__ = ["key_id", "load_public_key", "signing_key"]


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    if path.stat().st_mode & 0o077:
        log.warning("checkpoint key %s is readable by others than its owner (chmod 600 it)", path)
    return key


def signing_key(private_path: Path, public_path: Path) -> Ed25519PrivateKey:
    """The checkpoint signing key, created on the first call (and only then)."""
    # The public key is looked at before the private one: a concurrent first use writes the private key
    # before the public one, so a public key seen before a missing private key is a lost private key,
    # not another process half-way through making the pair.
    public_existed = public_path.exists()
    if not private_path.exists():
        if public_existed:
            raise ValueError(
                f"checkpoint public key {public_path} exists but its private key {private_path} does not: "
                "restore the private key (a new one would change the key id auditors trust), or remove "
                "the public key deliberately to start a new key"
            )
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        if create_exclusive(private_path, pem, 0o600):
            log.info("checkpoint signing key created: %s (key id %s)", private_path, key_id(key.public_key()))
    key = _load_private(private_path)
    if not public_path.exists():
        create_exclusive(public_path, _public_pem(key.public_key()), 0o644)
    if load_public_key(public_path).public_bytes_raw() != key.public_key().public_bytes_raw():
        raise ValueError(f"checkpoint public key {public_path} is not the public half of {private_path}")
    return key
