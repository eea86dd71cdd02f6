"""The checkpoint signing key: its own files, created once and atomically, never silently replaced."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from services.audit.signing import key_id, signing_key


def test_the_key_is_created_once_private_and_a_lost_public_half_is_derived_again(tmp_path: Path) -> None:
    private, public = tmp_path / "keys" / "checkpoint_private.pem", tmp_path / "keys" / "checkpoint_public.pem"
    key = signing_key(private, public)
    assert private.stat().st_mode & 0o777 == 0o600
    first = key_id(key.public_key())
    public.unlink()
    assert key_id(signing_key(private, public).public_key()) == first  # derived, not a new key
    assert public.exists() and not list(private.parent.glob(".*.tmp"))


def test_a_public_key_without_its_private_key_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    private, public = tmp_path / "private.pem", tmp_path / "public.pem"
    signing_key(private, public)
    private.unlink()
    with pytest.raises(ValueError, match="restore the private key"):
        signing_key(private, public)
    assert not private.exists()


def test_a_public_key_of_another_private_key_is_an_error(tmp_path: Path) -> None:
    signing_key(tmp_path / "a.pem", tmp_path / "a.pub")
    signing_key(tmp_path / "b.pem", tmp_path / "b.pub")
    (tmp_path / "a.pub").write_bytes((tmp_path / "b.pub").read_bytes())
    with pytest.raises(ValueError, match="not the public half"):
        signing_key(tmp_path / "a.pem", tmp_path / "a.pub")


def test_concurrent_first_uses_agree_on_one_key(tmp_path: Path) -> None:
    private, public = tmp_path / "private.pem", tmp_path / "public.pem"
    found: list[str] = []
    start = threading.Barrier(8)

    def first_use() -> None:
        start.wait()
        found.append(key_id(signing_key(private, public).public_key()))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and len(set(found)) == 1
