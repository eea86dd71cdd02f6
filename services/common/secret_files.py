"""Secret files written whole or not at all, never over another process's.

Keys and passwords are made on first need, often by several processes starting together (gunicorn
workers, a service and its relay). Each writes a private temporary file (``O_CREAT|O_EXCL``,
fsynced) and links it into place: ``os.link`` is atomic and refuses to replace, so exactly one
process's file wins and nobody ever reads half of one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def create_exclusive(path: Path, content: bytes, mode: int = 0o600) -> bool:
    """Writes ``content`` to ``path`` with ``mode`` unless it exists; True when this call created it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)  # whatever the umask
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)


def ensure_secret(path: Path, size_bytes: int = 32) -> bytes:
    """A random secret of ``size_bytes`` at ``path``, made (0600, exclusively) when missing, so every
    process and worker that shares the file shares the secret."""
    if not path.exists():
        create_exclusive(path, secrets.token_bytes(size_bytes))
    secret = path.read_bytes()
    if len(secret) != size_bytes:
        raise ValueError(f"secret {path}: must hold {size_bytes} bytes, holds {len(secret)}")
    return secret
