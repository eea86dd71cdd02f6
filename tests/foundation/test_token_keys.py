"""Issue 16, keys and secrets: the token key pair, the revocation list and the database password."""

from __future__ import annotations

import logging
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.common.auth import (
    RevocationList,
    TokenVerifier,
    ensure_keypair,
    ensure_revocation_list,
    init_token_files,
    issue_token,
)
from services.common.config import SettingError, load_settings
from services.common.errors import Unavailable
from tests.support.infra import PostgresInfo


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Files made under umask 0 would be world-readable unless made with their mode."""
    before = os.umask(0)
    yield
    os.umask(before)


def test_the_private_key_is_0600_and_never_written_through_a_planted_link(tmp_path: Path, open_umask: None) -> None:
    keys = tmp_path / "keys"
    ensure_keypair(keys / "private.pem", keys / "public.pem")
    assert stat.S_IMODE((keys / "private.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((keys / "public.pem").stat().st_mode) == 0o644

    # Someone who may write the keys directory plants a link where the key will be made, to a file
    # they can read: the key must not land there (O_CREAT|O_EXCL refuses; a plain write follows it).
    elsewhere = tmp_path / "attacker-readable.pem"
    elsewhere.write_bytes(b"")
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "private.pem").symlink_to(elsewhere)
    with pytest.raises(ValueError):
        ensure_keypair(planted / "private.pem", planted / "public.pem")
    assert elsewhere.read_bytes() == b""


def test_a_missing_public_key_is_derived_never_a_new_private_key(tmp_path: Path) -> None:
    private, public = tmp_path / "private.pem", tmp_path / "public.pem"
    ensure_keypair(private, public)
    ensure_revocation_list(tmp_path / "revoked.txt")
    key_before = private.read_bytes()
    token, _ = issue_token(key_before, role="auditor", audience=["ledger"])
    public.unlink()
    ensure_keypair(private, public)
    assert private.read_bytes() == key_before
    verifier = TokenVerifier(public.read_bytes(), RevocationList(tmp_path / "revoked.txt"), audience="ledger")
    assert verifier.verify(f"Bearer {token}").role == "auditor"  # what was signed before still verifies


@pytest.mark.parametrize("broken", ["missing", "a directory", "not text"])
def test_without_a_readable_revocation_list_every_token_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, broken: str
) -> None:
    """Fail closed: a list that cannot be read might have revoked this very token."""
    settings = load_settings({"IDO_KEYS_DIR": str(tmp_path / "keys")})
    init_token_files(settings)
    token, _ = issue_token(settings.jwt_private_key_file.read_bytes(), role="ministry", audience=["ledger"])
    path = settings.revoked_tokens_file
    path.unlink()
    if broken == "a directory":
        path.mkdir()
    elif broken == "not text":
        path.write_bytes(b"\xff\xfe\x00")
    verifier = TokenVerifier(settings.jwt_public_key_file.read_bytes(), RevocationList(path), audience="ledger")
    with caplog.at_level(logging.ERROR, logger="ido.auth"), pytest.raises(Unavailable):
        verifier.verify(f"Bearer {token}")
    assert "revocation list unreadable" in caplog.text and "IDO_REVOKED_TOKENS_FILE" in caplog.text


PASSWORD = "p@ss:w/rd%41#?&=x"
"""Every character that means something in a URL: unescaped, the URL splits at the wrong place."""


def test_a_password_with_url_characters_reaches_the_database(tmp_path: Path, postgres_server: PostgresInfo) -> None:
    role = f"ido_pw_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    try:
        password_file = tmp_path / "postgres.password"
        password_file.write_text(PASSWORD + "\n", encoding="utf-8")  # as a secret file usually ends
        server = {**postgres_server.settings_env(), "POSTGRES_USER": role, "POSTGRES_DBNAME": "postgres"}
        del server["POSTGRES_PASSWORD"]
        for way in ({"POSTGRES_PASSWORD": PASSWORD}, {"POSTGRES_PASSWORD_FILE": str(password_file)}):
            env = {**server, **way}
            url = load_settings(env).service_db_url("ledger")
            parsed = make_url(url)
            assert (parsed.username, parsed.password, parsed.host) == (role, PASSWORD, postgres_server.host)
            engine = create_engine(url)
            try:
                with engine.connect() as connection:
                    assert connection.execute(text("select current_user")).scalar() == role
            finally:
                engine.dispose()
    finally:
        with psycopg.connect(postgres_server.dsn("postgres"), autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_the_password_file_is_read_once_and_must_be_alone(tmp_path: Path) -> None:
    base = {"IDO_EVENT_STORE": "postgres", "POSTGRES_HOST": "db", "POSTGRES_DBNAME": "ido", "POSTGRES_USER": "ido"}
    with pytest.raises(SettingError, match="POSTGRES_PASSWORD_FILE"):
        load_settings({**base, "POSTGRES_PASSWORD_FILE": str(tmp_path / "absent")})
    (tmp_path / "pw").write_text("secret\n", encoding="utf-8")
    with pytest.raises(SettingError, match="not both"):
        load_settings({**base, "POSTGRES_PASSWORD_FILE": str(tmp_path / "pw"), "POSTGRES_PASSWORD": "other"})
    postgres = load_settings({**base, "POSTGRES_PASSWORD_FILE": str(tmp_path / "pw")}).postgres
    assert postgres is not None and postgres.password == "secret"
