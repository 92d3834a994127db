"""Forged, tampered, stale and misused tokens: always a 401, never a 500,
never someone's data. Each forgery starts from a real access token and breaks
exactly one thing, so whatever claims the server adds later are carried
over and the forgery still differs from a valid token in one way only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from tests.adversarial.conftest import World
from tests.support.api import User, new_user

Claims = dict[str, Any]
# Routes that need a user, of several kinds: a read, a list, a write.
PROTECTED = (
    ("GET", "/api/auth/verify"),
    ("GET", "/api/documents"),
    ("GET", "/api/chat/history"),
    ("POST", "/api/chat"),
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: Claims, signature: str = "") -> str:
    def part(value: dict[str, Any]) -> str:
        return _b64(json.dumps(value).encode())

    return f"{part(header)}.{part(claims)}.{signature}"


def _signing_input(claims: Claims) -> bytes:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}".encode()


def _hs256(message: bytes, key: bytes) -> str:
    """By hand: PyJWT refuses the empty key an attacker would try."""
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def claims_of(token: str) -> Claims:
    decoded: Claims = jwt.decode(token, options={"verify_signature": False})
    return decoded


def resigned(claims: Claims, key: str, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


async def assert_refused(client: httpx.AsyncClient, token: str, label: str) -> None:
    for method, path in PROTECTED:
        body = {"message": "hello"} if method == "POST" else None
        response = await client.request(
            method, path, headers={"Authorization": f"Bearer {token}"}, json=body
        )
        assert response.status_code == 401, (label, method, path, response.text)
        assert response.headers.get("www-authenticate", "").lower().startswith("bearer")


@pytest.fixture(scope="module")
async def victim(world: World) -> User:
    return world.victim


async def test_a_token_re_signed_with_the_real_key_is_accepted(
    client: httpx.AsyncClient, victim: User, app_env: dict[str, str]
) -> None:
    """The control: the forgeries below are refused for the one thing they
    change, not because this test builds tokens the server never accepts."""
    token = resigned(claims_of(victim.token), app_env["SECRET_KEY"])
    response = await client.get("/api/auth/verify", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.json()["id"] == victim.id


def _now() -> int:
    return int(time.time())


def _without(name: str) -> Callable[[Claims], Claims]:
    return lambda c: {k: v for k, v in c.items() if k != name}


def _with(**changes: Any) -> Callable[[Claims], Claims]:
    return lambda c: {**c, **changes}


# (label, how the claims change); each token is then signed with the real key.
CLAIM_FORGERIES: list[tuple[str, Callable[[Claims], Claims]]] = [
    ("expired", _with(exp=_now() - 60, iat=_now() - 3600)),
    ("issued-in-the-future", _with(iat=_now() + 3600, exp=_now() + 7200)),
    ("missing-sub", _without("sub")),
    ("missing-tid", _without("tid")),
    ("missing-typ", _without("typ")),
    ("missing-exp", _without("exp")),
    ("missing-iat", _without("iat")),
    ("missing-iss", _without("iss")),
    ("missing-aud", _without("aud")),
    ("missing-fam", _without("fam")),
    ("missing-jti", _without("jti")),
    ("fam-unknown", _with(fam=str(uuid.uuid4()))),
    ("wrong-iss", _with(iss="someone-else")),
    ("wrong-aud", _with(aud="another-service")),
    ("typ-refresh", _with(typ="refresh")),
    ("typ-unknown", _with(typ="admin")),
    ("sub-not-a-uuid", _with(sub="1 OR 1=1")),
    ("sub-unknown-user", _with(sub=str(uuid.uuid4()))),
    ("tid-another-tenant", _with(tid=str(uuid.uuid4()))),
    ("sub-as-number", _with(sub=12345)),
    ("exp-as-text", _with(exp="tomorrow")),
]


@pytest.mark.parametrize(("label", "change"), CLAIM_FORGERIES, ids=[f[0] for f in CLAIM_FORGERIES])
async def test_a_token_with_bad_claims_is_refused(
    client: httpx.AsyncClient,
    victim: User,
    app_env: dict[str, str],
    label: str,
    change: Callable[[Claims], Claims],
) -> None:
    claims = change(claims_of(victim.token))
    await assert_refused(client, resigned(claims, app_env["SECRET_KEY"]), label)


async def test_a_token_naming_another_user_is_refused(
    client: httpx.AsyncClient, world: World, app_env: dict[str, str]
) -> None:
    """Signed with the real key, the outsider's tenant with the victim's id:
    the user and tenant in a token must belong together."""
    claims = {**claims_of(world.outsider.token), "sub": world.victim.id}
    await assert_refused(client, resigned(claims, app_env["SECRET_KEY"]), "sub-swapped")


def _forgeries(token: str, key: str) -> dict[str, str]:
    claims = claims_of(token)
    header, payload, signature = token.split(".")
    tampered = _b64(json.dumps({**claims, "sub": str(uuid.uuid4())}).encode())
    return {
        "wrong-key": resigned(claims, "x" * 64),
        # What an attacker can read off the API: its issuer, title, audience.
        "key-issuer": resigned(claims, "ragstream"),
        "key-audience": resigned(claims, str(claims.get("aud", "ragstream"))),
        "key-empty": _unsigned(
            {"alg": "HS256", "typ": "JWT"}, claims, _hs256(_signing_input(claims), b"")
        ),
        "alg-none": _unsigned({"alg": "none", "typ": "JWT"}, claims),
        "alg-none-with-signature": _unsigned({"alg": "none", "typ": "JWT"}, claims, signature),
        "alg-None-capitalised": _unsigned({"alg": "None", "typ": "JWT"}, claims),
        "alg-HS512-real-key": resigned(claims, key, "HS512"),
        "alg-HS384-real-key": resigned(claims, key, "HS384"),
        "tampered-payload": f"{header}.{tampered}.{signature}",
        "signature-stripped": f"{header}.{payload}.",
        "signature-of-another-token": f"{header}.{payload}.{_b64(b'0' * 32)}",
        "garbage": "garbage",
        "three-dots": "a.b.c",
        "four-parts": f"{token}.extra",
        "not-base64": "!!!.$$$.%%%",
        "json-header-only": _b64(b'{"alg":"HS256"}') + "..",
        "huge": "a" * 16_000,
        "sql": "' OR '1'='1",
        "api-key-looking": "rsk_" + "0" * 40,
    }


# Short keys are the point here: what an attacker would guess.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_forged_and_garbage_tokens_are_refused(
    client: httpx.AsyncClient, victim: User, app_env: dict[str, str]
) -> None:
    for label, token in _forgeries(victim.token, app_env["SECRET_KEY"]).items():
        await assert_refused(client, token, label)


async def test_a_refresh_token_is_not_an_access_token(client: httpx.AsyncClient) -> None:
    outsider = await new_user(client, "refresher")
    body = {"username": outsider.username, "password": "a-long-password"}
    pair = (await client.post("/api/auth/login", json=body)).json()
    await assert_refused(client, pair["refresh_token"], "refresh-as-access")
    # Nor the other way round.
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": pair["access_token"]})
    assert refreshed.status_code == 401, refreshed.text


# (A value with only spaces after "Bearer" cannot be sent: HTTP strips
# trailing whitespace, so it arrives as the bare "Bearer" below.)
@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "bearer", "Basic dXNlcjpwYXNz", "Token abc", "", "Bearer Bearer"],
    ids=["bare", "lowercase", "basic", "token-scheme", "blank", "doubled"],
)
async def test_an_empty_or_foreign_authorization_header_is_refused(
    client: httpx.AsyncClient, authorization: str
) -> None:
    for method, path in PROTECTED:
        body = {"message": "hello"} if method == "POST" else None
        response = await client.request(
            method, path, headers={"Authorization": authorization}, json=body
        )
        assert response.status_code == 401, (authorization, path, response.text)


async def test_a_token_in_the_query_string_or_a_cookie_is_not_accepted(
    client: httpx.AsyncClient, victim: User
) -> None:
    """Identity only from the Authorization header: a token elsewhere ends up
    in access logs and browser history, or rides along cross-site."""
    token = victim.token
    assert (await client.get("/api/auth/verify", params={"token": token})).status_code == 401
    assert (await client.get("/api/auth/verify", params={"access_token": token})).status_code == 401
    client.cookies.set("access_token", token)
    try:
        assert (await client.get("/api/auth/verify")).status_code == 401
    finally:
        client.cookies.clear()
