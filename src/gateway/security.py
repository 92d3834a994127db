"""Passwords and tokens.

Tokens are HS256 JWTs signed with SECRET_KEY. SECRET_KEY_PREVIOUS, when set,
still verifies tokens signed before a rotation, so rotating logs no one out.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.config import Settings
from shared.errors import AuthError
from shared.events import utcnow

TokenType = Literal["access", "refresh"]
MIN_KEY_LENGTH = 32
_ISSUER = "ragstream"
_HASHER = PasswordHasher()
# Verified when the user does not exist, so both cases take the same time.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


def _verify(hashed: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(hashed or _DUMMY_HASH, password) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(hashed: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify, hashed, password)


@dataclass(frozen=True)
class Claims:
    user_id: UUID
    tenant_id: UUID
    type: TokenType


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class Tokens:
    def __init__(self, settings: Settings) -> None:
        if settings.secret_key is None:
            raise RuntimeError("SECRET_KEY is not set: the gateway cannot sign tokens")
        self._key = settings.secret_key.get_secret_value()
        previous = settings.secret_key_previous
        self._keys = [self._key] + ([previous.get_secret_value()] if previous else [])
        if any(len(key) < MIN_KEY_LENGTH for key in self._keys):
            raise RuntimeError(
                f"SECRET_KEY and SECRET_KEY_PREVIOUS need at least {MIN_KEY_LENGTH} characters;"
                " generate one with `openssl rand -hex 32`"
            )
        self._access_ttl = timedelta(minutes=settings.access_token_expire_minutes)
        self._refresh_ttl = timedelta(days=settings.refresh_token_expire_days)

    def _encode(self, user_id: UUID, tenant_id: UUID, kind: TokenType, ttl: timedelta) -> str:
        now = utcnow()
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "tid": str(tenant_id),
            "typ": kind,
            "iss": _ISSUER,
            "iat": now,
            "exp": now + ttl,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def issue(self, user_id: UUID, tenant_id: UUID) -> TokenPair:
        return TokenPair(
            access_token=self._encode(user_id, tenant_id, "access", self._access_ttl),
            refresh_token=self._encode(user_id, tenant_id, "refresh", self._refresh_ttl),
            expires_in=int(self._access_ttl.total_seconds()),
        )

    def verify(self, token: str, expected: TokenType) -> Claims:
        for key in self._keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=["HS256"],
                    issuer=_ISSUER,
                    options={"require": ["sub", "tid", "typ", "exp", "iat"]},
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError:
                break
            if claims["typ"] != expected:
                break
            try:
                return Claims(UUID(claims["sub"]), UUID(claims["tid"]), expected)
            except (TypeError, ValueError):
                break
        raise AuthError("Invalid token")
