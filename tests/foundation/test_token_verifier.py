"""Verified tokens are remembered, but never past their expiry or their revocation, and only as sent."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.common.auth import RevocationList, TokenVerifier, ensure_revocation_list, generate_keypair, issue_token
from services.common.definition import SERVICE_NAMES
from services.common.errors import Unauthenticated
from tests.support.waiting import ManualClock


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
    other, other_id = issue_token(private, audience=SERVICE_NAMES, role="auditor")
    assert verifier.verify(f"Bearer {token}").municipality_code == "GM0363"
    assert verifier.verify(f"Bearer {token}").token_id == token_id
    assert verifier.verify(f"Bearer {other}").token_id == other_id
    # Two revocations at once, within one mtime tick of the file system: each is seen at the next request.
    mtime_ns = revoked.path.stat().st_mtime_ns
    revoked.revoke(token_id)
    os.utime(revoked.path, ns=(mtime_ns, mtime_ns))
    with pytest.raises(Unauthenticated, match="revoked"):
        verifier.verify(f"Bearer {token}")
    revoked.revoke(other_id)
    os.utime(revoked.path, ns=(mtime_ns, mtime_ns))
    with pytest.raises(Unauthenticated, match="revoked"):
        verifier.verify(f"Bearer {other}")


def test_a_token_that_passed_is_refused_from_the_second_of_its_expiry(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "private.pem", tmp_path / "public.pem")
    ensure_revocation_list(tmp_path / "revoked.txt")
    issued_s = int(time.time())  # whole seconds, as in the token; not after now, or PyJWT finds it not yet valid
    clock = ManualClock(issued_s)
    verifier = TokenVerifier(
        (tmp_path / "public.pem").read_bytes(), RevocationList(tmp_path / "revoked.txt"), audience="ledger",
        clock=clock,
    )
    token, _ = issue_token(
        (tmp_path / "private.pem").read_bytes(), audience=SERVICE_NAMES, role="auditor",
        ttl=timedelta(seconds=60), now=datetime.fromtimestamp(issued_s, UTC),
    )
    assert verifier.verify(f"Bearer {token}").role == "auditor"
    clock.advance(59.999)
    assert verifier.verify(f"Bearer {token}").role == "auditor"  # remembered, and still valid
    clock.advance(0.001)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(f"Bearer {token}")  # remembered: refused without checking the signature again
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(f"Bearer {token}")  # checked anew (no longer remembered): refused as well


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
