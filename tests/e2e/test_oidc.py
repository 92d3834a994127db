"""Single sign-on against a real OpenID provider (tests/support/oidc): its
tokens, got by its real authorization-code flow with PKCE, are bearer
credentials on the API; users and tenants are created at the first
sign-in; the admin group gives the admin role; key rotation at the
provider keeps working; a disabled user, or one without a tenant claim,
stays refused. Forgeries are tests/adversarial/test_oidc_tokens.py's."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest

from tests.support.api import User, new_user, upload, wait_for_status
from tests.support.oidc_provider import OidcProvider, gateway_settings, through_pages
from tests.support.processes import Component, free_port, start_gateway

RAG = str(Path(sys.executable).parent / "rag")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def whoami(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/auth/verify", headers=bearer(token))


@pytest.fixture
async def db(app_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(app_env["DATABASE_URL"], min_size=1, max_size=2)
    yield pool
    await pool.close()


async def test_an_access_token_from_the_provider_signs_in_and_creates_the_user(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcProvider, db: asyncpg.Pool
) -> None:
    tokens = await oidc_provider.sign_in("alice")
    response = await whoami(oidc_client, tokens.access_token)
    assert response.status_code == 200, response.text
    alice = response.json()
    assert alice["username"] == oidc_provider.name("alice")
    assert alice["role"] == "admin"  # in rag-admins, OIDC_ADMIN_GROUP
    tenant = await db.fetchval(
        "SELECT name FROM tenants WHERE id = $1", uuid.UUID(alice["tenant_id"])
    )
    assert tenant == oidc_provider.name("acme")
    # The ID token (aud: the client id) names the same user; so does a later sign-in.
    again = await oidc_provider.sign_in("alice")
    for token in (tokens.id_token, again.access_token):
        response = await whoami(oidc_client, token)
        assert response.status_code == 200, response.text
        assert response.json()["id"] == alice["id"]
    identities = await db.fetchval(
        "SELECT count(*) FROM external_identities WHERE user_id = $1", uuid.UUID(alice["id"])
    )
    assert identities == 1
    # It has no password: the local sign-in refuses it whatever is typed.
    login = await oidc_client.post(
        "/api/auth/login", json={"username": alice["username"], "password": "anything-at-all"}
    )
    assert login.status_code == 401


async def test_a_member_of_the_same_tenant_shares_it_and_uses_the_api(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    alice = (await whoami(oidc_client, (await oidc_provider.sign_in("alice")).access_token)).json()
    bob_token = (await oidc_provider.sign_in("bob")).access_token
    bob = (await whoami(oidc_client, bob_token)).json()
    assert bob["tenant_id"] == alice["tenant_id"]
    assert bob["role"] == "member"
    carol = (await whoami(oidc_client, (await oidc_provider.sign_in("carol")).access_token)).json()
    assert carol["tenant_id"] != alice["tenant_id"]
    # The token is a credential like any other: an upload, indexed, listed.
    user = User(bob["username"], bob_token, bob["id"], bob["tenant_id"])
    doc_id = await upload(oidc_client, user, "sso.txt", b"Single sign-on works for bob.")
    assert (await wait_for_status(oidc_client, user, doc_id))["status"] == "indexed"
    listed = await oidc_client.get("/api/documents", headers=user.headers)
    assert listed.status_code == 200, listed.text
    assert doc_id in listed.text


async def test_key_rotation_at_the_provider_keeps_sign_in_working(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    before = (await oidc_provider.sign_in("alice")).access_token
    assert (await whoami(oidc_client, before)).status_code == 200  # the keys are read
    new_kid = oidc_provider.rotate()
    after = (await oidc_provider.sign_in("alice")).access_token
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    # An unknown kid prompts a fresh read, at most once a second here
    # (OIDC_JWKS_REFRESH_SECONDS=1): the gateway may have read them just now.
    await asyncio.sleep(1.2)
    response = await whoami(oidc_client, after)
    assert response.status_code == 200, response.text
    # The old key is still published: tokens it signed still work.
    assert (await whoami(oidc_client, before)).status_code == 200


async def test_a_disabled_user_stays_refused(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    admin_token = (await oidc_provider.sign_in("alice")).access_token
    erin_token = (await oidc_provider.sign_in("erin")).access_token
    erin = await whoami(oidc_client, erin_token)
    assert erin.status_code == 200, erin.text
    disabled = await oidc_client.post(
        f"/api/admin/users/{erin.json()['id']}/disable", headers=bearer(admin_token)
    )
    assert disabled.status_code == 200, disabled.text
    assert (await whoami(oidc_client, erin_token)).status_code == 401
    # A fresh sign-in at the provider does not bring the account back.
    fresh = (await oidc_provider.sign_in("erin")).access_token
    assert (await whoami(oidc_client, fresh)).status_code == 401
    enabled = await oidc_client.post(
        f"/api/admin/users/{erin.json()['id']}/enable", headers=bearer(admin_token)
    )
    assert enabled.status_code == 200, enabled.text
    assert (await whoami(oidc_client, fresh)).status_code == 200


async def test_a_token_without_a_tenant_claim_is_refused(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcProvider, db: asyncpg.Pool
) -> None:
    """dave's provider account names no tenant: refused, not guessed, and
    no account is made for him."""
    tokens = await oidc_provider.sign_in("dave")
    assert (await whoami(oidc_client, tokens.access_token)).status_code == 401
    made = await db.fetchval(
        "SELECT count(*) FROM external_identities WHERE issuer = $1 AND subject = 'dave'",
        oidc_provider.issuer,
    )
    assert made == 0


async def test_a_provider_user_named_like_a_local_account_does_not_get_it(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    """A local account frank-<run> exists before the provider's frank first
    signs in: he is refused, never handed that account by its name."""
    local = await oidc_client.post(
        "/api/auth/register",
        json={"username": oidc_provider.name("frank"), "password": "local-password-123"},
    )
    assert local.status_code == 201, local.text
    tokens = await oidc_provider.sign_in("frank")
    response = await whoami(oidc_client, tokens.access_token)
    assert response.status_code == 401
    assert "taken" in response.text


async def _web_sign_in(client: httpx.AsyncClient, login: str) -> httpx.Response:
    """The browser's part, with one cookie jar for gateway and provider:
    the gateway's /login, the provider's pages, back to the callback."""
    started = await client.get("/api/auth/oidc/login")
    assert started.status_code == 302, started.text
    assert "code_challenge=" in started.headers["location"]
    callback = f"{str(client.base_url).rstrip('/')}/api/auth/oidc/callback"
    provider_answer = await client.get(started.headers["location"])
    back = await through_pages(client, provider_answer, login, callback)
    return await client.get(back)


async def test_the_web_sign_in_by_code_and_pkce_starts_a_session(
    oidc_gateway: Component, oidc_provider: OidcProvider
) -> None:
    async with httpx.AsyncClient(base_url=oidc_gateway.base_url or "", timeout=30) as browser:
        config = (await browser.get("/web/config.json")).json()
        assert config["sso"] is True
        done = await _web_sign_in(browser, "bob")
        assert done.status_code == 302
        location = done.headers["location"]
        assert location.startswith("/#sso="), location
        code = location.removeprefix("/#sso=")
        tokens = await browser.post("/api/auth/oidc/exchange", json={"code": code})
        assert tokens.status_code == 200, tokens.text
        pair = tokens.json()
        me = await whoami(browser, pair["access_token"])
        assert me.status_code == 200, me.text
        assert me.json()["username"] == oidc_provider.name("bob")
        # A ragstream session like a password one: it refreshes, and the code is used up.
        refreshed = await browser.post(
            "/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        again = await browser.post("/api/auth/oidc/exchange", json={"code": code})
        assert again.status_code == 401


async def test_a_callback_with_another_browsers_state_is_refused(
    oidc_gateway: Component, oidc_provider: OidcProvider
) -> None:
    """Login CSRF: a callback URL from someone else's sign-in, opened in a
    browser that did not start it, signs nobody in."""
    base = oidc_gateway.base_url or ""
    async with httpx.AsyncClient(base_url=base, timeout=30) as attacker:
        started = await attacker.get("/api/auth/oidc/login")
        callback = f"{base}/api/auth/oidc/callback"
        answer = await attacker.get(started.headers["location"])
        back = await through_pages(attacker, answer, "alice", callback)
    async with httpx.AsyncClient(base_url=base, timeout=30) as victim:
        landed = await victim.get(back)
        assert landed.status_code == 302
        assert landed.headers["location"] == "/#sso_error=refused"
    # Nor does the same URL opened twice in the browser that started it.
    async with httpx.AsyncClient(base_url=base, timeout=30) as browser:
        first = await _web_sign_in(browser, "alice")
        assert first.headers["location"].startswith("/#sso=")
        replay = await browser.get(str(first.request.url))
        assert replay.headers["location"] in ("/#sso_error=refused", "/#sso_error=expired")


async def test_rag_login_sso_signs_in_by_device_code(
    oidc_gateway: Component, oidc_provider: OidcProvider, tmp_path: Path
) -> None:
    """`rag login --sso` in a subprocess shows an address and a code; the
    user approves at the provider (its real device pages); the CLI ends
    signed in as the provider's user, with a session it can use."""
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("RAG_URL", None)
    process = await asyncio.create_subprocess_exec(
        RAG,
        "login",
        "--sso",
        "--url",
        oidc_gateway.base_url or "",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    found = re.search(r"Open (\S+) and sign in; the code is (\S+)", line)
    assert found, line
    assert found.group(2) in found.group(1)  # the address carries the code
    await oidc_provider.approve_device(found.group(1), "alice")
    rest = (await asyncio.wait_for(process.stdout.read(), 60)).decode()
    assert await process.wait() == 0, rest
    assert f"as {oidc_provider.name('alice')}" in rest
    stored = json.loads((tmp_path / "config" / "ragstream" / "login.json").read_text())
    async with httpx.AsyncClient(base_url=oidc_gateway.base_url or "", timeout=30) as client:
        me = await whoami(client, stored["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["username"] == oidc_provider.name("alice")


async def test_break_glass_a_local_admin_signs_in_while_the_provider_is_down(
    app_env: dict[str, str], log_dir: Path, oidc_provider: OidcProvider
) -> None:
    """A gateway whose provider does not answer (nothing listens at its
    issuer) still starts, and a local admin's password sign-in works; a
    token claiming to be the provider's gets 503, not a sign-in."""
    dead_issuer = f"http://127.0.0.1:{free_port()}"
    settings = {**gateway_settings(oidc_provider), "OIDC_ISSUER_URL": dead_issuer}
    gateway = start_gateway("gateway-oidc-down", {**app_env, **settings}, log_dir)
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
            admin = await new_user(client, "breakglass")  # a tenant's local admin
            me = await whoami(client, admin.token)
            assert me.status_code == 200, me.text
            assert me.json()["role"] == "admin"
            claims = {"iss": dead_issuer, "sub": "alice", "aud": "https://ragstream.test/api"}
            token = oidc_provider.sign({**claims, "tenant": oidc_provider.name("acme")})
            refused = await whoami(client, token)
            assert refused.status_code == 503, refused.text
            assert "provider" in refused.text
    finally:
        gateway.stop()
    assert "OpenID provider keys unreadable" in gateway.log()
