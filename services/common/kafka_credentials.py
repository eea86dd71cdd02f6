"""The Kafka principals and their password files: one ``<principal>.password`` per principal, mode 0600,
in ``IDO_KAFKA_CREDENTIALS_DIR`` (default ``<IDO_KEYS_DIR>/kafka``), never in the repository.

A password is made at first need with ``secrets`` and written atomically: a 0600 temp file in the same
directory, then linked into place (first creation: never overwrites a password another process made)
or renamed over the old one (rotation). Readers never see a half-written file. Passwords are never
logged or printed; errors name the file, not its content.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from pathlib import Path

from services.common.definition import SERVICE_NAMES
from services.common.secret_files import create_exclusive

ADMIN = "ido-admin"
"""Super user: formats the broker (scripts/kafka.sh), provisions topics, users and ACLs. No service uses it."""
PROJECTOR = "ido-projector"
AUDIT = "ido-audit"
FINANCE = "ido-finance"
PROBE = "ido-probe"
"""Read-only metadata (DESCRIBE on the topics, no READ): the services' /readyz and /metrics."""
RELAYS = {service: f"ido-relay-{service}" for service in SERVICE_NAMES}
"""Each service's relay writes its topic as a principal of its own (services/common/definition.py lists them)."""

CLIENT_PRINCIPALS = (*RELAYS.values(), PROJECTOR, AUDIT, FINANCE, PROBE)
"""Every principal `ido kafka provision` makes a SCRAM user for (the admin exists from the broker's format)."""
PRINCIPALS = (ADMIN, *CLIENT_PRINCIPALS)

_PASSWORD = re.compile(r"^[A-Za-z0-9._~-]{16,}$")


class CredentialError(ValueError):
    """A password file is missing or unusable (the message names the file, never a password)."""


def relay_principal(service: str) -> str:
    try:
        return RELAYS[service]
    except KeyError:
        raise CredentialError(f"no Kafka principal for a relay of {service!r} (one of {', '.join(RELAYS)})") from None


def password_file(credentials_dir: Path, principal: str) -> Path:
    if principal not in PRINCIPALS:
        raise CredentialError(f"unknown Kafka principal {principal!r} (one of {', '.join(PRINCIPALS)})")
    return credentials_dir / f"{principal}.password"


def new_password() -> str:
    return secrets.token_hex(24)


def read_password(credentials_dir: Path, principal: str) -> str:
    path = password_file(credentials_dir, principal)
    try:
        password = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise CredentialError(
            f"no Kafka password for {principal}: {path} does not exist "
            "(`ido kafka provision` makes it; see docs/operations.md)"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise CredentialError(f"cannot read the Kafka password file {path}: {type(error).__name__}") from None
    if not _PASSWORD.fullmatch(password):
        raise CredentialError(f"{path} must hold one password of 16+ characters [A-Za-z0-9._~-]")
    return password


def _temp_file(directory: Path, principal: str, password: str) -> Path:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{principal}.", dir=directory)  # mode 0600
    try:
        os.write(descriptor, f"{password}\n".encode("ascii"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return Path(name)


def ensure_password(credentials_dir: Path, principal: str) -> tuple[str, bool]:
    """The principal's password, made (and stored) if it has none yet; True when it was made now."""
    path = password_file(credentials_dir, principal)
    if path.exists():
        return read_password(credentials_dir, principal), False
    credentials_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    made = create_exclusive(path, f"{new_password()}\n".encode("ascii"))
    return read_password(credentials_dir, principal), made


class PendingPassword:
    """A new password written beside the current one; ``commit`` renames it into place, ``discard`` drops it.

    Rotation writes the new password first, sets it on the broker, and only then commits: the file
    never holds a password the broker does not know.
    """

    def __init__(self, credentials_dir: Path, principal: str):
        self.path = password_file(credentials_dir, principal)
        self.password = new_password()
        self.temp = _temp_file(credentials_dir, principal, self.password)

    def commit(self) -> None:
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        self.temp.unlink(missing_ok=True)
