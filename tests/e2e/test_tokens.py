"""Tokens against a real gateway: forgeries refused, single-use refresh
tokens, reuse and logout revoking the session, disabled users cut off on
their next request, and a key rotation that logs no one out."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from tests.support.api import new_user
from tests.support.processes import Component, start_gateway

PASSWORD = "a-long-password"  # what tests.support.api.new_user registers with


async def _login(client: httpx.AsyncClient, username: str) -> dict[str, Any]:
    response = await client.post(
        "/api/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def _session(client: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    user = await new_user(client, "tok")
    return user.username, await _login(client, user.username)


async def _verify(client: httpx.AsyncClient, access_token: str) -> int:
    headers = {"Authorization": f"Bearer {access_token}"}
    return (await client.get("/api/auth/verify", headers=headers)).status_code


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": refresh_token})


async def _sql(app_env: dict[str, str], query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(app_env["DATABASE_URL"])
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def _actions(app_env: dict[str, str], username: str) -> list[str]:
    rows = await _sql(
        app_env,
        "SELECT a.action FROM audit_log a JOIN users u ON u.tenant_id = a.tenant_id"
        " WHERE u.username = $1 ORDER BY a.id",
        username,
    )
    return [row["action"] for row in rows]


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _resign(claims: dict[str, Any], key: str | None, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


async def test_forged_and_malformed_access_tokens_are_refused(
    client: httpx.AsyncClient, app_env: dict[str, str]
) -> None:
    _, tokens = await _session(client)
    claims, key = _claims(tokens["access_token"]), app_env["SECRET_KEY"]
    # The control: re-signed unchanged with the real key, it is accepted, so
    # each refusal below is down to the one thing changed.
    assert await _verify(client, _resign(claims, key)) == 200
    past = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp())
    forgeries = {
        "wrong key": _resign(claims, secrets.token_hex(32)),
        "expired": _resign({**claims, "exp": past}, key),
        "alg none": _resign(claims, None, "none"),
        "wrong aud": _resign({**claims, "aud": "another-service"}, key),
        "wrong iss": _resign({**claims, "iss": "someone-else"}, key),
        "no exp": _resign({k: v for k, v in claims.items() if k != "exp"}, key),
        "no iat": _resign({k: v for k, v in claims.items() if k != "iat"}, key),
        "refresh token": tokens["refresh_token"],
    }
    for name, token in forgeries.items():
        assert await _verify(client, token) == 401, name


async def test_an_access_token_is_not_a_refresh_token(client: httpx.AsyncClient) -> None:
    _, tokens = await _session(client)
    assert (await _refresh(client, tokens["access_token"])).status_code == 401
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 200


async def test_refresh_tokens_are_single_use_and_reuse_revokes_the_session(
    client: httpx.AsyncClient, app_env: dict[str, str]
) -> None:
    username, first = await _session(client)
    other_session = await _login(client, username)
    rotated = await _refresh(client, first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert _claims(second["access_token"])["fam"] == _claims(first["access_token"])["fam"]
    assert await _verify(client, second["access_token"]) == 200

    # The old token again: someone else holds it. The whole session dies.
    assert (await _refresh(client, first["refresh_token"])).status_code == 401
    assert (await _refresh(client, second["refresh_token"])).status_code == 401
    assert await _verify(client, second["access_token"]) == 401
    assert await _verify(client, first["access_token"]) == 401
    assert "auth.refresh_reused" in await _actions(app_env, username)
    # Only that session: the user's other login is untouched.
    assert await _verify(client, other_session["access_token"]) == 200
    assert (await _refresh(client, other_session["refresh_token"])).status_code == 200


async def test_logout_with_the_refresh_token_ends_the_session(
    client: httpx.AsyncClient, app_env: dict[str, str]
) -> None:
    username, tokens = await _session(client)
    other_session = await _login(client, username)
    body = {"refresh_token": tokens["refresh_token"]}
    assert (await client.post("/api/auth/logout", json=body)).status_code == 204
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 401
    assert await _verify(client, tokens["access_token"]) == 401
    assert await _verify(client, other_session["access_token"]) == 200
    assert "auth.logout" in await _actions(app_env, username)
    # Idempotent.
    assert (await client.post("/api/auth/logout", json=body)).status_code == 204


async def test_logout_with_only_the_access_token_ends_its_session(
    client: httpx.AsyncClient,
) -> None:
    _, tokens = await _session(client)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.post("/api/auth/logout", headers=headers)).status_code == 204
    assert await _verify(client, tokens["access_token"]) == 401
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 401
    assert (await client.post("/api/auth/logout")).status_code == 401


async def test_a_disabled_user_is_cut_off_on_the_next_request(
    client: httpx.AsyncClient, app_env: dict[str, str]
) -> None:
    username, tokens = await _session(client)
    assert await _verify(client, tokens["access_token"]) == 200
    await _sql(app_env, "UPDATE users SET disabled_at = now() WHERE username = $1", username)
    assert await _verify(client, tokens["access_token"]) == 401
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 401
    body = {"username": username, "password": PASSWORD}
    assert (await client.post("/api/auth/login", json=body)).status_code == 401
    assert (await _actions(app_env, username))[-1] == "auth.login_failed"


async def test_logins_are_audited_but_unknown_usernames_are_not(
    client: httpx.AsyncClient, app_env: dict[str, str]
) -> None:
    username, _ = await _session(client)
    wrong = {"username": username, "password": "not-the-password"}
    assert (await client.post("/api/auth/login", json=wrong)).status_code == 401
    unknown = {"username": f"nobody-{secrets.token_hex(4)}", "password": PASSWORD}
    response = await client.post("/api/auth/login", json=unknown)
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid username or password"
    actions = await _actions(app_env, username)
    assert actions[-2:] == ["auth.login", "auth.login_failed"]
    leaked = await _sql(
        app_env, "SELECT 1 FROM audit_log WHERE strpos(detail::text, $1) > 0", wrong["password"]
    )
    assert not leaked


@pytest.fixture(scope="module")
def rotated_gateway(
    app_env: dict[str, str], log_dir: Path, gateway: Component
) -> Iterator[tuple[Component, str]]:
    """A gateway after the runbook's rotation: a new SECRET_KEY, the one the
    session gateway signs with as SECRET_KEY_PREVIOUS."""
    new_key = secrets.token_hex(32)
    env = {**app_env, "SECRET_KEY": new_key, "SECRET_KEY_PREVIOUS": app_env["SECRET_KEY"]}
    component = start_gateway("gateway-rotated", env, log_dir)
    yield component, new_key
    component.stop()


async def test_rotating_the_signing_key_logs_no_one_out(
    client: httpx.AsyncClient,
    app_env: dict[str, str],
    rotated_gateway: tuple[Component, str],
) -> None:
    _, before = await _session(client)  # signed with the old key
    rotated, new_key = rotated_gateway
    async with httpx.AsyncClient(base_url=rotated.base_url or "", timeout=30) as after:
        assert await _verify(after, before["access_token"]) == 200
        response = await _refresh(after, before["refresh_token"])
        assert response.status_code == 200, response.text
        renewed = response.json()
        assert await _verify(after, renewed["access_token"]) == 200
    for token in (renewed["access_token"], renewed["refresh_token"]):
        jwt.decode(token, new_key, algorithms=["HS256"], audience="ragstream")
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(token, app_env["SECRET_KEY"], algorithms=["HS256"], audience="ragstream")
