"""Verified tokens are remembered, but never past their expiry or their revocation, and only as sent."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from services.common.auth import RevocationList, TokenVerifier, ensure_revocation_list, generate_keypair, issue_token
from services.common.definition import SERVICE_NAMES
from services.common.errors import Unauthenticated


@pytest.fixture
def keys(tmp_path: Path) -> tuple[bytes, TokenVerifier, RevocationList]:
    generate_keypair(tmp_path / "private.pem", tmp_path / "public.pem")
    ensure_revocation_list(tmp_path / "revoked.txt")
    revoked = RevocationList(tmp_path / "revoked.txt")
    verifier = TokenVerifier((tmp_path / "public.pem").read_bytes(), revoked, audience="ledger")
    return (tmp_path / "private.pem").read_bytes(), verifier, revoked


def test_a_token_that_passed_is_refused_once_revoked(keys: tuple[bytes, TokenVerifier, RevocationList]) -> None:
    private, verifier, revoked = keys
    token, token_id = issue_token(private, audience=SERVICE_NAMES, role="municipality", municipality_code="GM0363")
    assert verifier.verify(f"Bearer {token}").municipality_code == "GM0363"
    assert verifier.verify(f"Bearer {token}").token_id == token_id
    time.sleep(0.01)  # the revocation file's mtime must move
    revoked.revoke(token_id)
    with pytest.raises(Unauthenticated, match="revoked"):
        verifier.verify(f"Bearer {token}")


def test_a_token_that_passed_is_refused_once_expired(keys: tuple[bytes, TokenVerifier, RevocationList]) -> None:
    private, verifier, _ = keys
    token, _ = issue_token(private, audience=SERVICE_NAMES, role="auditor", ttl=timedelta(seconds=1.5))
    assert verifier.verify(f"Bearer {token}").role == "auditor"
    time.sleep(1.6)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(f"Bearer {token}")
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(f"Bearer {token}")


def test_a_changed_signature_of_a_remembered_token_is_refused(
    keys: tuple[bytes, TokenVerifier, RevocationList],
) -> None:
    private, verifier, _ = keys
    token, _ = issue_token(private, audience=SERVICE_NAMES, role="finance")
    verifier.verify(f"Bearer {token}")
    head, body, signature = token.split(".")
    forged = ".".join([head, body, ("A" if signature[0] != "A" else "B") + signature[1:]])
    with pytest.raises(Unauthenticated, match="invalid token"):
        verifier.verify(f"Bearer {forged}")
