"""Passwords and tokens.

Tokens are HS256 JWTs signed with SECRET_KEY. SECRET_KEY_PREVIOUS, when set,
still verifies tokens signed before a rotation, so rotating logs no one out.
Every token names its refresh-token family (``fam``): the family is the
server-side session that refresh, logout and reuse detection revoke
(``gateway.identity.sessions``).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.config import Settings
from shared.contracts.events import utcnow
from shared.errors import AuthError

TokenType = Literal["access", "refresh"]
MIN_KEY_LENGTH = 32
ISSUER = "ragstream"
_REQUIRED = ["sub", "tid", "typ", "fam", "jti", "iss", "aud", "exp", "iat"]


class Passwords:
    """Argon2 hashing, at most ``concurrency`` hashes at once: each takes
    64 MiB and a core, so a burst of logins queues here instead of
    exhausting the pod's memory."""

    def __init__(self, concurrency: int) -> None:
        self._hasher = PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency)
        # Verified when the user does not exist, so both cases take the same time.
        self._dummy = self._hasher.hash(secrets.token_hex(16))

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, hashed: str | None, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(self._verify, hashed, password)

    def _verify(self, hashed: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(hashed or self._dummy, password) and hashed is not None
        except (VerificationError, InvalidHashError):
            return False


@dataclass(frozen=True)
class Claims:
    user_id: UUID
    tenant_id: UUID
    type: TokenType
    family_id: UUID
    jti: str


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    # Stored by gateway.identity.sessions so that each refresh token is used once.
    refresh_jti: str
    refresh_expires_at: datetime


def _keys(settings: Settings) -> list[str]:
    if settings.secret_key is None:
        raise RuntimeError("SECRET_KEY is not set: the gateway cannot sign tokens")
    previous = settings.secret_key_previous
    keys = [settings.secret_key.get_secret_value()]
    # Empty counts as unset: ending a rotation by blanking the value (in
    # .env, say) must not stop the gateway.
    keys += [previous.get_secret_value()] if previous and previous.get_secret_value() else []
    if any(len(key) < MIN_KEY_LENGTH for key in keys):
        raise RuntimeError(
            f"SECRET_KEY and SECRET_KEY_PREVIOUS need at least {MIN_KEY_LENGTH} characters;"
            " generate one with `openssl rand -hex 32`"
        )
    return keys


class Tokens:
    """Signs and verifies tokens; built once per process at start-up, and
    holds the process's bounded password hasher."""

    def __init__(self, settings: Settings) -> None:
        self._keys = _keys(settings)
        self._audience = settings.token_audience
        self._access_ttl = timedelta(minutes=settings.access_token_expire_minutes)
        self._refresh_ttl = timedelta(days=settings.refresh_token_expire_days)
        self.passwords = Passwords(settings.password_hash_concurrency)

    def _encode(self, claims: dict[str, Any], ttl: timedelta) -> tuple[str, str, datetime]:
        now, jti = utcnow(), secrets.token_hex(16)
        claims = {**claims, "iss": ISSUER, "aud": self._audience, "iat": now, "jti": jti}
        claims["exp"] = expires = now + ttl
        # Always the current key: the previous one only verifies.
        return jwt.encode(claims, self._keys[0], algorithm="HS256"), jti, expires

    def issue(self, user_id: UUID, tenant_id: UUID, family_id: UUID) -> TokenPair:
        base = {"sub": str(user_id), "tid": str(tenant_id), "fam": str(family_id)}
        access, _, _ = self._encode({**base, "typ": "access"}, self._access_ttl)
        refresh, jti, expires = self._encode({**base, "typ": "refresh"}, self._refresh_ttl)
        return TokenPair(access, refresh, int(self._access_ttl.total_seconds()), jti, expires)

    def verify(self, token: str, expected: TokenType) -> Claims:
        """The claims of a valid token of type ``expected``; AuthError with
        the same message whatever is wrong, so failures reveal nothing."""
        for key in self._keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=["HS256"],  # pinned: never `none`, never RS/HS confusion
                    issuer=ISSUER,
                    audience=self._audience,
                    options={"require": _REQUIRED},
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError:
                break
            if claims["typ"] != expected:
                break
            try:
                return Claims(
                    UUID(claims["sub"]),
                    UUID(claims["tid"]),
                    expected,
                    UUID(claims["fam"]),
                    str(claims["jti"]),
                )
            except (TypeError, ValueError):
                break
        raise AuthError("Invalid token")
