"""Tokens for tests, signed with a key pair made for the test run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from services.common.auth import ensure_keypair, issue_token
from services.common.config import Settings


class TokenFactory:
    def __init__(self, settings: Settings):
        self.settings = settings
        ensure_keypair(settings.jwt_private_key_file, settings.jwt_public_key_file)
        self._private = Path(settings.jwt_private_key_file).read_bytes()

    def token(self, role: str, municipality_code: str | None = None, ttl: timedelta = timedelta(hours=1)) -> str:
        token, _ = issue_token(self._private, role=role, municipality_code=municipality_code, ttl=ttl)
        return token

    def headers(self, role: str, municipality_code: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, municipality_code)}"}
