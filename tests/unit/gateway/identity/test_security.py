import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import jwt
import pytest
from pydantic import SecretStr

from gateway.identity.security import Passwords, Tokens
from shared.config import Settings
from shared.errors import AuthError

KEY = "k" * 32


def _tokens(key: str = KEY, previous: str | None = None, **settings: Any) -> Tokens:
    return Tokens(
        Settings(
            secret_key=SecretStr(key),
            secret_key_previous=SecretStr(previous) if previous else None,
            **settings,
        )
    )


def _claims(**overrides: Any) -> dict[str, Any]:
    """Valid access-token claims, but for ``overrides``."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(uuid4()),
        "tid": str(uuid4()),
        "fam": str(uuid4()),
        "jti": "j",
        "typ": "access",
        "iss": "ragstream",
        "aud": "ragstream",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def test_access_token_round_trip() -> None:
    tokens = _tokens()
    user, tenant, family = uuid4(), uuid4(), uuid4()
    pair = tokens.issue(user, tenant, family)
    claims = tokens.verify(pair.access_token, "access")
    assert (claims.user_id, claims.tenant_id, claims.family_id) == (user, tenant, family)
    assert pair.expires_in == 30 * 60
    refresh = tokens.verify(pair.refresh_token, "refresh")
    assert refresh.jti == pair.refresh_jti and refresh.family_id == family


def test_access_tokens_carry_audience_issuer_and_times() -> None:
    pair = _tokens(token_audience="rag-prod").issue(uuid4(), uuid4(), uuid4())
    claims = jwt.decode(pair.access_token, KEY, algorithms=["HS256"], audience="rag-prod")
    assert claims["iss"] == "ragstream"
    assert claims["exp"] - claims["iat"] == 30 * 60


def test_a_token_for_another_audience_is_rejected() -> None:
    pair = _tokens(token_audience="staging").issue(uuid4(), uuid4(), uuid4())
    with pytest.raises(AuthError, match="Invalid token"):
        _tokens(token_audience="production").verify(pair.access_token, "access")


@pytest.mark.parametrize(("expected", "other"), [("access", "refresh"), ("refresh", "access")])
def test_token_types_are_not_interchangeable(expected: str, other: str) -> None:
    tokens = _tokens()
    pair = tokens.issue(uuid4(), uuid4(), uuid4())
    token = pair.access_token if other == "access" else pair.refresh_token
    with pytest.raises(AuthError, match="Invalid token"):
        tokens.verify(token, expected)  # type: ignore[arg-type]


def test_rotation_accepts_tokens_signed_with_the_previous_key() -> None:
    old = _tokens("old-key" * 5).issue(uuid4(), uuid4(), uuid4()).access_token
    assert _tokens("new-key" * 5, previous="old-key" * 5).verify(old, "access")
    with pytest.raises(AuthError):
        _tokens("new-key" * 5).verify(old, "access")


def test_new_tokens_are_signed_with_the_current_key() -> None:
    pair = _tokens("new-key" * 5, previous="old-key" * 5).issue(uuid4(), uuid4(), uuid4())
    with pytest.raises(AuthError):
        _tokens("old-key" * 5).verify(pair.access_token, "access")


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": datetime.now(UTC) - timedelta(seconds=5)},
        {"aud": "someone-else"},
        {"aud": None},
        {"iss": "someone-else"},
        {"iat": None},
        {"fam": None},
        {"fam": "not-a-uuid"},
        {"sub": "not-a-uuid"},
        {"typ": "admin"},
    ],
    ids=[
        "expired",
        "wrong-aud",
        "no-aud",
        "wrong-iss",
        "no-iat",
        "no-family",
        "bad-family",
        "bad-sub",
        "bad-type",
    ],
)
def test_bad_claims_are_rejected(claims: dict[str, Any]) -> None:
    token = jwt.encode(_claims(**claims), KEY, algorithm="HS256")
    with pytest.raises(AuthError, match="Invalid token"):
        _tokens().verify(token, "access")


def test_valid_claims_are_accepted() -> None:
    """The control for the test above: only the override makes it fail."""
    assert _tokens().verify(jwt.encode(_claims(), KEY, algorithm="HS256"), "access")


FORGERIES = {
    "garbage": lambda: "not-a-jwt",
    "wrong-key": lambda: jwt.encode(_claims(), "w" * 32, algorithm="HS256"),
    "other-algorithm": lambda: jwt.encode(_claims(), KEY, algorithm="HS512"),
    "alg-none": lambda: jwt.encode(_claims(), key=None, algorithm="none"),
}


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("name", FORGERIES)
def test_forged_tokens_are_rejected(name: str) -> None:
    with pytest.raises(AuthError, match="Invalid token"):
        _tokens().verify(FORGERIES[name](), "access")


@pytest.mark.parametrize("key", [None, "", "short-key"])
def test_missing_or_weak_secret_key_fails_loudly(key: str | None) -> None:
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        Tokens(Settings(secret_key=SecretStr(key) if key is not None else None))


def test_weak_previous_key_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="SECRET_KEY_PREVIOUS"):
        _tokens(previous="short")


def test_an_empty_previous_key_is_unset() -> None:
    tokens = Tokens(Settings(secret_key=SecretStr(KEY), secret_key_previous=SecretStr("")))
    assert tokens.verify(tokens.issue(uuid4(), uuid4(), uuid4()).access_token, "access")


async def test_password_hashing() -> None:
    passwords = Passwords(concurrency=2)
    hashed = await passwords.hash("correct horse")
    assert hashed != "correct horse"
    assert await passwords.verify(hashed, "correct horse")
    assert not await passwords.verify(hashed, "wrong horse")
    assert not await passwords.verify(None, "correct horse")
    assert not await passwords.verify("not-a-hash", "correct horse")


class _CountingHasher:
    """Stands in for argon2, recording how many hashes run at once."""

    def __init__(self) -> None:
        self.running = self.peak = 0
        self._lock = threading.Lock()

    def hash(self, password: str) -> str:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(0.05)
        with self._lock:
            self.running -= 1
        return "hashed"

    def verify(self, hashed: str, password: str) -> bool:
        self.hash(password)
        return True


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_hashing_is_bounded_per_process(concurrency: int) -> None:
    passwords = _tokens(password_hash_concurrency=concurrency).passwords
    counting = _CountingHasher()
    passwords._hasher = counting  # type: ignore[assignment]
    await asyncio.gather(
        *(passwords.hash("pw") for _ in range(6)),
        *(passwords.verify("h", "pw") for _ in range(6)),
    )
    assert counting.peak == concurrency
