"""Tokens for tests, signed with a key pair made for the test run.

By default a token is for every service (tests send one token to several apps) and its subject is
the municipality's code or the role, the same for every token of that caller (tests name the
caller's Idempotency-Key rows ``role:subject``); pass ``subject`` for a second client of the same
role, ``audience`` for a narrower token.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from pathlib import Path

from services.common.auth import init_token_files, issue_token
from services.common.config import Settings
from services.common.definition import SERVICE_NAMES


class TokenFactory:
    def __init__(self, settings: Settings):
        self.settings = settings
        init_token_files(settings)
        self._private = Path(settings.jwt_private_key_file).read_bytes()

    def token(
        self,
        role: str,
        municipality_code: str | None = None,
        ttl: timedelta = timedelta(hours=1),
        *,
        audience: Collection[str] = SERVICE_NAMES,
        subject: str | None = None,
    ) -> str:
        token, _ = issue_token(
            self._private, role=role, audience=audience, municipality_code=municipality_code,
            subject=subject or municipality_code or role, ttl=ttl,
            max_lifetime_s=self.settings.token_max_lifetime_s,
        )
        return token

    def headers(
        self,
        role: str,
        municipality_code: str | None = None,
        *,
        audience: Collection[str] = SERVICE_NAMES,
        subject: str | None = None,
    ) -> dict[str, str]:
        token = self.token(role, municipality_code, audience=audience, subject=subject)
        return {"Authorization": f"Bearer {token}"}
