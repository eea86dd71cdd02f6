"""Signed bearer tokens (JWT, EdDSA): who is calling, in which role, for which municipality.

Services only verify with the public key, so an identity provider can replace our issuer later.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.identifiers import CBS_CODE
from services.common.errors import Forbidden, Unauthenticated

ROLES = ("ministry", "kb", "auditor", "finance", "municipality")
ISSUER = "ido-ledger"
ALGORITHM = "EdDSA"


@dataclass(frozen=True)
class Principal:
    role: str
    municipality_code: str | None
    token_id: str
    subject: str

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"role {self.role!r} may not do this; allowed: {', '.join(roles)}")

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
        if self.role == "municipality":
            if self.municipality_code == municipality_code:
                return
            if (
                predecessors is not None
                and self.municipality_code is not None
                and municipality_code in predecessors(self.municipality_code)
            ):
                return
            raise Forbidden(f"a token of {self.municipality_code} may not reach the books of {municipality_code}")
        if self.role not in readers:
            raise Forbidden(f"role {self.role!r} may not reach the books of {municipality_code}")


def generate_keypair(private_path: Path, public_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    private_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    private_path.chmod(0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def ensure_keypair(private_path: Path, public_path: Path) -> None:
    if not private_path.exists() or not public_path.exists():
        generate_keypair(private_path, public_path)


def issue_token(
    private_key_pem: bytes,
    *,
    role: str,
    municipality_code: str | None = None,
    subject: str | None = None,
    ttl: timedelta = timedelta(hours=12),
    now: datetime | None = None,
) -> tuple[str, str]:
    """Returns (token, token_id)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if (role == "municipality") != (municipality_code is not None):
        raise ValueError("a municipality token needs --municipality, and only it")
    if municipality_code is not None and not CBS_CODE.fullmatch(municipality_code):
        raise ValueError("municipality must be a CBS code: GM and 4 digits")
    issued_at = now or datetime.now(UTC)
    token_id = str(uuid.uuid4())
    claims = {
        "iss": ISSUER,
        "sub": subject or (municipality_code or role),
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
        self._mtime_ns: int | None = None
        self._ids: frozenset[str] = frozenset()

    def revoke(self, token_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(token_id + "\n")

    def __contains__(self, token_id: object) -> bool:
        try:
            mtime_ns = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return False
        if mtime_ns != self._mtime_ns:
            lines = self.path.read_text(encoding="utf-8").splitlines()
            self._ids = frozenset(line.strip() for line in lines if line.strip())
            self._mtime_ns = mtime_ns
        return token_id in self._ids


VERIFIED_TOKENS_KEPT = 4096
"""Tokens whose signature and claims were checked, kept until they expire (then checked anew)."""


class TokenVerifier:
    def __init__(self, public_key_pem: bytes, revoked: RevocationList):
        key = serialization.load_pem_public_key(public_key_pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("setting IDO_JWT_PUBLIC_KEY_FILE: the key must be an Ed25519 public key")
        self._key = key
        self._revoked = revoked
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
        if expires_at <= time.time():  # as PyJWT: expired from the second in ``exp`` on
            self._verified.pop(token, None)
            raise Unauthenticated("token expired", field="Authorization")
        if principal.token_id in self._revoked:
            raise Unauthenticated("token revoked", field="Authorization")
        return principal

    def _check(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token, self._key, algorithms=[ALGORITHM], issuer=ISSUER,
                options={"require": ["exp", "iat", "jti", "role", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired", field="Authorization") from None
        except jwt.InvalidTokenError as error:
            raise Unauthenticated(f"invalid token: {error}", field="Authorization") from None
        role = claims["role"]
        municipality = claims.get("municipality")
        if claims["jti"] in self._revoked:
            raise Unauthenticated("token revoked", field="Authorization")
        if role not in ROLES or (role == "municipality" and not municipality):
            raise Unauthenticated("token carries no valid role", field="Authorization")
        principal = Principal(role=role, municipality_code=municipality, token_id=claims["jti"], subject=claims["sub"])
        return principal, float(claims["exp"])


def verifier_from_files(public_key_file: Path, revoked_tokens_file: Path) -> TokenVerifier:
    try:
        public_key_pem = public_key_file.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"setting IDO_JWT_PUBLIC_KEY_FILE: no public key at {public_key_file} (run `ido tokens init-keys`)"
        ) from None
    return TokenVerifier(public_key_pem, RevocationList(revoked_tokens_file))
