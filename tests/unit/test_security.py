from uuid import uuid4

import jwt
import pytest
from pydantic import SecretStr

from gateway.security import Tokens, hash_password, verify_password
from shared.config import Settings
from shared.errors import AuthError


def _tokens(key: str, previous: str | None = None) -> Tokens:
    return Tokens(
        Settings(
            secret_key=SecretStr(key),
            secret_key_previous=SecretStr(previous) if previous else None,
        )
    )


def test_access_token_round_trip() -> None:
    tokens = _tokens("k" * 32)
    user, tenant = uuid4(), uuid4()
    pair = tokens.issue(user, tenant)
    claims = tokens.verify(pair.access_token, "access")
    assert (claims.user_id, claims.tenant_id) == (user, tenant)
    assert pair.expires_in == 30 * 60


def test_refresh_token_is_not_an_access_token() -> None:
    tokens = _tokens("k" * 32)
    pair = tokens.issue(uuid4(), uuid4())
    with pytest.raises(AuthError, match="Invalid token"):
        tokens.verify(pair.refresh_token, "access")


def test_rotation_accepts_tokens_signed_with_the_previous_key() -> None:
    old = _tokens("old-key" * 5).issue(uuid4(), uuid4()).access_token
    assert _tokens("new-key" * 5, previous="old-key" * 5).verify(old, "access")
    with pytest.raises(AuthError):
        _tokens("new-key" * 5).verify(old, "access")


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256"),
        jwt.encode(
            {
                "sub": str(uuid4()),
                "tid": str(uuid4()),
                "typ": "access",
                "exp": 1,
                "iat": 0,
                "iss": "ragstream",
            },
            "k" * 32,
            algorithm="HS256",
        ),
    ],
    ids=["garbage", "missing-claims", "expired"],
)
def test_bad_tokens_are_rejected(token: str) -> None:
    with pytest.raises(AuthError, match="Invalid token"):
        _tokens("k" * 32).verify(token, "access")


def test_unsigned_token_is_rejected() -> None:
    forged = jwt.encode(
        {
            "sub": str(uuid4()),
            "tid": str(uuid4()),
            "typ": "access",
            "iss": "ragstream",
            "exp": 2**40,
            "iat": 0,
        },
        key=None,
        algorithm="none",
    )
    with pytest.raises(AuthError):
        _tokens("k" * 32).verify(forged, "access")


@pytest.mark.parametrize("key", [None, "", "short-key"])
def test_missing_or_weak_secret_key_fails_loudly(key: str | None) -> None:
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        Tokens(Settings(secret_key=SecretStr(key) if key is not None else None))


async def test_password_hashing() -> None:
    hashed = await hash_password("correct horse")
    assert hashed != "correct horse"
    assert await verify_password(hashed, "correct horse")
    assert not await verify_password(hashed, "wrong horse")
    assert not await verify_password(None, "correct horse")
    assert not await verify_password("not-a-hash", "correct horse")
