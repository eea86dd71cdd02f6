"""Issue 16, tokens: what a token must carry to be believed, each as the attack it stops.

A token is checked for its audience (the service it is for), its subject, its lifetime and its
municipality claim, not only its signature: a valid signature says who issued it, not that what the
issuer wrote fits. Tokens below are signed with the real key, as a careless issuer would make them.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from services.common.auth import (
    ISSUER,
    RevocationList,
    TokenVerifier,
    ensure_keypair,
    ensure_revocation_list,
    issue_token,
)
from services.common.errors import Unauthenticated

MAX_LIFETIME_S = 3600


@pytest.fixture
def private(tmp_path: Path) -> bytes:
    ensure_keypair(tmp_path / "private.pem", tmp_path / "public.pem")
    ensure_revocation_list(tmp_path / "revoked.txt")
    return (tmp_path / "private.pem").read_bytes()


def issue(private: bytes, **claims: Any) -> tuple[str, str]:
    return issue_token(private, max_lifetime_s=MAX_LIFETIME_S, **claims)


def verifier(tmp_path: Path, service: str) -> TokenVerifier:
    return TokenVerifier(
        (tmp_path / "public.pem").read_bytes(), RevocationList(tmp_path / "revoked.txt"), audience=service,
        max_lifetime_s=MAX_LIFETIME_S,
    )


def signed(private: bytes, **overrides: Any) -> str:
    """A token signed with the real key, with claims a careless issuer might have written."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": ["ledger"], "sub": "client-1", "role": "ministry", "jti": str(uuid.uuid4()),
        "iat": now, "exp": now + 600,
    }
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, serialization.load_pem_private_key(private, None), algorithm="EdDSA")  # type: ignore[arg-type]


def test_a_token_for_one_service_is_refused_by_another(private: bytes, tmp_path: Path) -> None:
    ledger_only, _ = issue(private, role="ministry", audience=["ledger"])
    assert verifier(tmp_path, "ledger").verify(f"Bearer {ledger_only}").role == "ministry"
    with pytest.raises(Unauthenticated, match="not for the payments service"):
        verifier(tmp_path, "payments").verify(f"Bearer {ledger_only}")
    both, _ = issue(private, role="ministry", audience=["ledger", "payments"])
    assert verifier(tmp_path, "payments").verify(f"Bearer {both}").role == "ministry"
    without = signed(private, aud=None)
    with pytest.raises(Unauthenticated, match="aud"):
        verifier(tmp_path, "ledger").verify(f"Bearer {without}")
    for wrong in ([], ["ledgers"], ["ledger", "kafka"]):
        with pytest.raises(ValueError, match="audience"):
            issue(private, role="ministry", audience=wrong)


@pytest.mark.parametrize("subject", [None, "", " ", "a b", "x" * 129, 7, "ministry\n"])
def test_a_token_without_a_usable_subject_is_refused(private: bytes, tmp_path: Path, subject: object) -> None:
    with pytest.raises(Unauthenticated):
        verifier(tmp_path, "ledger").verify(f"Bearer {signed(private, sub=subject)}")


def test_a_lifetime_over_the_maximum_is_refused_at_issue_and_at_verification(private: bytes, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at most 3600 s"):
        issue_token(private, role="auditor", audience=["ledger"], ttl=timedelta(hours=2), max_lifetime_s=3600)
    now = int(time.time())
    at_most, _ = issue(private, role="auditor", audience=["ledger"], ttl=timedelta(hours=1))
    assert verifier(tmp_path, "ledger").verify(f"Bearer {at_most}").role == "auditor"
    # Signed by an issuer that allowed more (or before the maximum was lowered): refused all the same.
    too_long = signed(private, iat=now - 60, exp=now + MAX_LIFETIME_S)
    with pytest.raises(Unauthenticated, match="more than the 3600 s allowed"):
        verifier(tmp_path, "ledger").verify(f"Bearer {too_long}")
    # ... also when it dates its issue into the future to look short.
    from_the_future = signed(private, iat=now + 3 * 3600, exp=now + 3 * 3600 + 60)
    with pytest.raises(Unauthenticated, match="not yet valid"):
        verifier(tmp_path, "ledger").verify(f"Bearer {from_the_future}")


@pytest.mark.parametrize(
    ("role", "municipality"),
    [
        ("municipality", None),
        ("municipality", "GM036"),
        ("municipality", "gm0363"),
        ("municipality", "GM0363\n"),
        ("municipality", "GM0363/../GM0599"),
        ("municipality", 363),
        ("municipality", ["GM0363"]),
        ("ministry", "GM0363"),  # a ministry token that also claims a municipality's books
    ],
)
def test_a_bad_municipality_claim_is_refused(private: bytes, tmp_path: Path, role: str, municipality: object) -> None:
    token = signed(private, role=role, municipality=municipality)
    with pytest.raises(Unauthenticated, match="municipality|CBS code"):
        verifier(tmp_path, "ledger").verify(f"Bearer {token}")
    good = signed(private, role="municipality", municipality="GM0363")
    assert verifier(tmp_path, "ledger").verify(f"Bearer {good}").municipality_code == "GM0363"


def test_issue_gives_each_token_its_own_subject_unless_told(private: bytes, tmp_path: Path) -> None:
    first, _ = issue(private, role="ministry", audience=["ledger"])
    second, _ = issue(private, role="ministry", audience=["ledger"])
    check = verifier(tmp_path, "ledger")
    subjects = {check.verify(f"Bearer {first}").subject, check.verify(f"Bearer {second}").subject}
    assert len(subjects) == 2 and "ministry" not in subjects
    named, _ = issue(private, role="ministry", audience=["ledger"], subject="bzk-finance-system")
    assert check.verify(f"Bearer {named}").subject == "bzk-finance-system"
