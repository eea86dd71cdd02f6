"""Signed bearer tokens (JWT, EdDSA): who is calling, in which role, for which municipality.

Services only verify with the public key, so an identity provider can replace our issuer later.
A token names the services it is for (``aud``: a ledger token is not a payments token unless
issued for both), its subject (``sub``: the caller's own Idempotency-Key space) and a lifetime of
at most ``IDO_TOKEN_MAX_LIFETIME_S``, checked when it is issued and again when it is verified.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.identifiers import CBS_CODE
from services.common.definition import SERVICE_NAMES
from services.common.errors import Forbidden, Unauthenticated, Unavailable
from services.common.secret_files import create_exclusive

if TYPE_CHECKING:
    from services.common.config import Settings

ROLES = ("ministry", "kb", "auditor", "finance", "municipality")
ISSUER = "ido-ledger"
ALGORITHM = "EdDSA"
DEFAULT_MAX_LIFETIME_S = 12 * 3600
"""``IDO_TOKEN_MAX_LIFETIME_S`` unless set: a stolen token is good for half a day at most."""
SUBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}")  # fullmatch: "$" would let a "\n" end it
"""A token's ``sub``: an identity provider's ids and e-mail addresses fit; no spaces or control
characters (it is part of the Idempotency-Key row's caller, at most 200 characters with the role)."""
SUBJECT_REASON = "must be 1-128 letters, digits or . _ @ : - (starting with a letter or digit)"

log = logging.getLogger("ido.auth")


@dataclass(frozen=True)
class Principal:
    role: str
    municipality_code: str | None
    token_id: str
    subject: str

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"role {self.role!r} may not do this; allowed: {', '.join(roles)}")

    def owns_books_of(self, municipality_code: str) -> bool:
        """The municipality's own token: the only caller who writes its books (with no ``readers``, what
        ``require_books_of`` allows; the dashboard asks it to show the forms that post)."""
        return self.role == "municipality" and self.municipality_code == municipality_code

    def require_books_of(
        self,
        municipality_code: str,
        *,
        readers: tuple[str, ...] = (),
        predecessors: Callable[[str], Collection[str]] | None = None,
    ) -> None:
        """A municipality reaches only its own books; ``readers`` are the other roles allowed.

        ``predecessors`` (given only where books are read): the codes merged into a municipality,
        whose books it may read too, since it answers for their grants; asked only for another code."""
        if self.owns_books_of(municipality_code):
            return
        if self.role == "municipality":
            if (
                predecessors is not None
                and self.municipality_code is not None
                and municipality_code in predecessors(self.municipality_code)
            ):
                return
            raise Forbidden(f"a token of {self.municipality_code} may not reach the books of {municipality_code}")
        if self.role not in readers:
            raise Forbidden(f"role {self.role!r} may not reach the books of {municipality_code}")


def _public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def ensure_keypair(private_path: Path, public_path: Path) -> None:
    """The token key pair: made only when no private key file is there (O_CREAT|O_EXCL, 0600 from
    its first byte, linked into place: never written through a planted link nor over another
    process's key). A missing public key is derived from the private key, never a new pair: tokens
    already issued must keep verifying."""
    if not os.path.lexists(private_path):
        key = Ed25519PrivateKey.generate()
        private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        if create_exclusive(private_path, private_pem, 0o600):
            public_path.unlink(missing_ok=True)  # the half of a lost private key would verify nothing
            create_exclusive(public_path, _public_pem(key), 0o644)
            return
    if not public_path.exists():
        found = serialization.load_pem_private_key(private_path.read_bytes(), None)
        if not isinstance(found, Ed25519PrivateKey):
            raise ValueError(f"{private_path}: the token signing key must be an Ed25519 private key")
        create_exclusive(public_path, _public_pem(found), 0o644)


generate_keypair = ensure_keypair
"""The old name: it never replaces a key pair either."""


def ensure_revocation_list(path: Path) -> None:
    """An empty revocation list where there is none: services refuse every token without one."""
    create_exclusive(path, b"", 0o644)


def init_token_files(settings: Settings) -> None:
    """What `ido tokens init-keys` makes: the key pair and an empty revocation list, where missing."""
    ensure_keypair(settings.jwt_private_key_file, settings.jwt_public_key_file)
    ensure_revocation_list(settings.revoked_tokens_file)


def new_subject(role: str, municipality_code: str | None = None) -> str:
    """A subject no other token has: two clients of one role never share Idempotency-Keys."""
    return f"{municipality_code or role}-{secrets.token_hex(8)}"


def _audiences(audience: Collection[str]) -> list[str]:
    names = sorted(set(audience))
    unknown = [name for name in names if name not in SERVICE_NAMES]
    if not names or unknown:
        raise ValueError(f"audience must name one or more of {', '.join(SERVICE_NAMES)}, got {list(audience)}")
    return names


def issue_token(
    private_key_pem: bytes,
    *,
    role: str,
    audience: Collection[str],
    municipality_code: str | None = None,
    subject: str | None = None,
    ttl: timedelta | None = None,
    max_lifetime_s: int = DEFAULT_MAX_LIFETIME_S,
    now: datetime | None = None,
) -> tuple[str, str]:
    """Returns (token, token_id). ``audience``: the services the token is for; without ``subject``
    a new one is made (``new_subject``), never one shared with another token of the role; ``ttl``
    at most, and by default, ``max_lifetime_s``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if (role == "municipality") != (municipality_code is not None):
        raise ValueError("a municipality token needs --municipality, and only it")
    if municipality_code is not None and not CBS_CODE.fullmatch(municipality_code):
        raise ValueError("municipality must be a CBS code: GM and 4 digits")
    ttl = ttl if ttl is not None else timedelta(seconds=max_lifetime_s)
    if ttl.total_seconds() > max_lifetime_s:
        raise ValueError(f"a token lives at most {max_lifetime_s} s (IDO_TOKEN_MAX_LIFETIME_S), asked {ttl}")
    subject = subject if subject is not None else new_subject(role, municipality_code)
    if not SUBJECT.fullmatch(subject):
        raise ValueError(f"subject {SUBJECT_REASON}")
    issued_at = now or datetime.now(UTC)
    token_id = str(uuid.uuid4())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": _audiences(audience),
        "sub": subject,
        "role": role,
        "jti": token_id,
        "iat": issued_at,
        "exp": issued_at + ttl,
    }
    if municipality_code:
        claims["municipality"] = municipality_code
    private_key = serialization.load_pem_private_key(private_key_pem, None)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ValueError("the token signing key must be an Ed25519 private key")
    token = jwt.encode(claims, private_key, algorithm=ALGORITHM)
    return token, token_id


class RevocationList:
    """Revoked token ids, one per line in a file shared by the services; re-read when it changes."""

    def __init__(self, path: Path):
        self.path = path
        self._version: tuple[int, int] | None = None
        self._ids: frozenset[str] = frozenset()

    def revoke(self, token_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(token_id + "\n")

    def unreadable(self) -> str | None:
        """Why the list cannot be read now (for /readyz), or None."""
        try:
            _ = "" in self
        except Unavailable:
            return f"cannot read {self.path} (IDO_REVOKED_TOKENS_FILE)"
        return None

    def __contains__(self, token_id: object) -> bool:
        """Fails closed: without a readable list no token can be shown not to be revoked (503)."""
        try:
            # Its size too: a revocation appended within the file system's mtime tick of the one
            # before leaves the mtime as it was, and would go unseen until the next change.
            stat = self.path.stat()
            version = (stat.st_mtime_ns, stat.st_size)
            if version != self._version:
                lines = self.path.read_text(encoding="utf-8").splitlines()
                self._ids = frozenset(line.strip() for line in lines if line.strip())
                self._version = version
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            log.error(
                "revocation list unreadable, refusing every token (setting IDO_REVOKED_TOKENS_FILE: %s: %s; "
                "`ido tokens init-keys` makes an empty one)", self.path, reason,
            )
            raise Unavailable("the token revocation list cannot be read; no token is accepted") from None
        return token_id in self._ids


VERIFIED_TOKENS_KEPT = 4096
"""Tokens whose signature and claims were checked, kept until they expire (then checked anew)."""


class TokenVerifier:
    """Verifies tokens for one service (``audience``)."""

    def __init__(
        self, public_key_pem: bytes, revoked: RevocationList, *, audience: str,
        max_lifetime_s: int = DEFAULT_MAX_LIFETIME_S, clock: Callable[[], float] = time.time,
    ):
        key = serialization.load_pem_public_key(public_key_pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("setting IDO_JWT_PUBLIC_KEY_FILE: the key must be an Ed25519 public key")
        self._key = key
        self.revoked = revoked
        self.audience = audience
        self.max_lifetime_s = max_lifetime_s
        self._clock = clock
        """Seconds since the epoch, UTC: the expiry of a remembered token is checked against it (tests move it)."""
        # A client sends the same token with every request; the signature check and claim parsing
        # were 8 % of a posting's CPU (bench/README.md). Keyed by the whole token, signature included,
        # so only the exact bytes that passed are let through; expiry and revocation are still
        # checked on every request.
        self._verified: dict[str, tuple[Principal, float]] = {}

    def verify(self, authorization_header: str | None) -> Principal:
        if not authorization_header or not authorization_header.startswith("Bearer "):
            raise Unauthenticated("missing bearer token in the Authorization header", field="Authorization")
        token = authorization_header.removeprefix("Bearer ").strip()
        verified = self._verified.get(token)
        if verified is None:
            verified = self._check(token)
            if len(self._verified) >= VERIFIED_TOKENS_KEPT:
                self._verified.clear()
            self._verified[token] = verified
        principal, expires_at = verified
        if expires_at <= self._clock():  # as PyJWT: expired from the second in ``exp`` on
            self._verified.pop(token, None)
            raise Unauthenticated("token expired", field="Authorization")
        if principal.token_id in self.revoked:
            raise Unauthenticated("token revoked", field="Authorization")
        return principal

    def _check(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token, self._key, algorithms=[ALGORITHM], issuer=ISSUER, audience=self.audience,
                options={"require": ["exp", "iat", "jti", "role", "iss", "aud", "sub"]},
            )  # iat in the future is refused too (PyJWT: "not yet valid")
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired", field="Authorization") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"token is not for the {self.audience} service", field="Authorization") from None
        except jwt.InvalidTokenError as error:
            raise Unauthenticated(f"invalid token: {error}", field="Authorization") from None
        _check_claims(claims, self.max_lifetime_s)
        if claims["jti"] in self.revoked:
            raise Unauthenticated("token revoked", field="Authorization")
        principal = Principal(
            role=claims["role"], municipality_code=claims.get("municipality"), token_id=claims["jti"],
            subject=claims["sub"],
        )
        return principal, float(claims["exp"])


def _check_claims(claims: dict[str, object], max_lifetime_s: int) -> None:
    """What the signature cannot vouch for: an issuer (ours, or an identity provider later) that
    put a wrong role, municipality, subject or lifetime into a token it signed."""
    role, municipality, subject = claims["role"], claims.get("municipality"), claims["sub"]
    if role not in ROLES:
        raise Unauthenticated("token carries no valid role", field="Authorization")
    if role == "municipality":
        if not isinstance(municipality, str) or not CBS_CODE.fullmatch(municipality):
            raise Unauthenticated("a municipality token must name a CBS code (GM and 4 digits)", field="Authorization")
    elif municipality is not None:
        raise Unauthenticated(f"a {role} token names no municipality", field="Authorization")
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        raise Unauthenticated(f"token subject {SUBJECT_REASON}", field="Authorization")
    if not isinstance(claims["jti"], str) or not claims["jti"]:
        raise Unauthenticated("token carries no id (jti)", field="Authorization")
    lifetime_s = float(claims["exp"]) - float(claims["iat"])  # type: ignore[arg-type]  # numbers: PyJWT checked
    if lifetime_s > max_lifetime_s:
        raise Unauthenticated(
            f"token lives {lifetime_s:.0f} s, more than the {max_lifetime_s} s allowed", field="Authorization"
        )


def verifier_for(settings: Settings, service: str) -> TokenVerifier:
    """The verifier of one service's tokens, from the settings' key, revocation list and lifetime."""
    public_key_file = settings.jwt_public_key_file
    try:
        public_key_pem = public_key_file.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"setting IDO_JWT_PUBLIC_KEY_FILE: no public key at {public_key_file} (run `ido tokens init-keys`)"
        ) from None
    return TokenVerifier(
        public_key_pem, RevocationList(settings.revoked_tokens_file), audience=service,
        max_lifetime_s=settings.token_max_lifetime_s,
    )
