"""Abuse resistance at the HTTP layer, against real gateway processes:
bodies bounded (and unauthenticated uploads never read), sign-in, request
and stream limits in Redis, security headers, CORS.

The limited gateway has a Kafka topic prefix of its own, so no worker
answers its chats: a stream stays open until its stream_timeout, which is
what the stream-cap test needs. It trusts X-Forwarded-For from 127.0.0.1
(uvicorn's FORWARDED_ALLOW_IPS), as behind an ingress on the same host, so
tests can sign in "from" addresses of their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest

from shared.storage.blob_root import MARKER
from tests.support.api import new_user, stream_chat, upload
from tests.support.processes import Component, free_port, start_gateway

ORIGIN = "https://app.example"
MB = 1024 * 1024
BIG = 20 * MB


@dataclass
class Limited:
    gateway: Component
    blob_dir: Path
    spool_dir: Path


@pytest.fixture(scope="module")
def limited(
    app_env: dict[str, str], log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Limited]:
    blobs, spool = tmp_path_factory.mktemp("limit-blobs"), tmp_path_factory.mktemp("spool")
    env = {
        **app_env,
        "KAFKA_TOPIC_PREFIX": f"limits-{uuid.uuid4().hex[:8]}",
        "BLOB_DIR": str(blobs),
        # Where Python (and so starlette's multipart parser) spools uploads.
        "TMPDIR": str(spool),
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "LOGIN_ATTEMPTS_PER_MINUTE": "10",
        "AUTH_FAILURES_PER_MINUTE": "5",
        "REQUESTS_PER_MINUTE": "20",
        "MAX_CONCURRENT_STREAMS": "1",
        "MAX_UPLOAD_MB": "1",
        "MAX_JSON_BODY_KB": "4",
        "CORS_ORIGINS": json.dumps([ORIGIN]),
    }
    component = start_gateway("gateway-limits", env, log_dir)
    yield Limited(component, blobs, spool)
    component.stop()


def _ip() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


@pytest.fixture
async def http(limited: Limited) -> AsyncIterator[httpx.AsyncClient]:
    # An address of this test's own: the per-IP sign-in limit is per test.
    headers = {"X-Forwarded-For": _ip()}
    base = limited.gateway.base_url or ""
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as client:
        yield client


async def _fresh_window() -> None:
    """Limits count per clock minute: start a counting test well inside one."""
    if time.time() % 60 > 50:
        await asyncio.sleep(61 - time.time() % 60)


# --- raw HTTP: to see when the server answers relative to what was sent -------


@dataclass
class Head:
    status: int
    headers: dict[str, str]


def _address(component: Component) -> tuple[str, int]:
    url = httpx.URL(component.base_url or "")
    return url.host, url.port or 80


async def _read_head(reader: asyncio.StreamReader) -> Head:
    raw = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = raw.strip().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return Head(int(status_line.split()[1]), headers)


def _upload_head(token: str | None, *, length: int | None, boundary: str = "b0undary") -> bytes:
    lines = [
        "POST /api/documents HTTP/1.1",
        "Host: gateway",
        f"Content-Type: multipart/form-data; boundary={boundary}",
    ]
    lines += [f"Authorization: Bearer {token}"] if token else []
    lines += [f"Content-Length: {length}"] if length is not None else ["Transfer-Encoding: chunked"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _answer_before_body(component: Component, head: bytes, seconds: float = 10) -> Head:
    """Send only the request head, and wait for the answer: one that comes
    means the server decided without the body."""
    reader, writer = await asyncio.open_connection(*_address(component))
    try:
        writer.write(head)
        await writer.drain()
        return await asyncio.wait_for(_read_head(reader), seconds)
    finally:
        writer.close()


async def _stream_chunks(component: Component, head: bytes, total: int) -> tuple[Head, int]:
    """Send a chunked multipart body of ``total`` bytes at a steady pace
    until the server answers; the answer and how much had been sent."""
    reader, writer = await asyncio.open_connection(*_address(component))
    answer = asyncio.create_task(_read_head(reader))
    part = (
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
    )
    sent, chunk = 0, b"x" * (64 * 1024)
    writer.write(head)
    try:
        for data in [part, *([chunk] * (total // len(chunk)))]:
            if answer.done():
                break
            try:
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
            except ConnectionError:
                break  # the server answered and closed
            sent += len(data)
            await asyncio.sleep(0.003)
        return await asyncio.wait_for(answer, 10), sent
    finally:
        answer.cancel()
        writer.close()


def _spooled_files(component: Component, spool: Path) -> list[str]:
    """Files in the spool folder, and files the gateway holds open there
    (an unlinked temporary file shows only as an open descriptor)."""
    held = []
    for fd in Path(f"/proc/{component.process.pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(spool)):
            held.append(target)
    return [p.name for p in spool.iterdir()] + held


async def _documents_of(app_env: dict[str, str], username: str) -> int:
    conn = await asyncpg.connect(app_env["DATABASE_URL"])
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM documents d JOIN users u ON u.id = d.user_id"
            " WHERE u.username = $1",
            username,
        )
    finally:
        await conn.close()
    return count


# --- bodies -------------------------------------------------------------------


def _blobs(blob_dir: Path) -> list[Path]:
    """What the blob store holds besides its root's marker (blob_root)."""
    return [p for p in blob_dir.iterdir() if p.name != MARKER]


async def test_anonymous_upload_is_refused_before_its_body_is_read(
    limited: Limited, http: httpx.AsyncClient
) -> None:
    forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    made_up_key = "rsk_" + "A" * 43
    for token in (None, forged, "not-a-token", made_up_key):
        head = await _answer_before_body(limited.gateway, _upload_head(token, length=BIG))
        assert head.status == 401, token
        assert head.headers["www-authenticate"] == "Bearer"
        assert head.headers["x-content-type-options"] == "nosniff"
    # Chunked, no length to judge by: refused all the same, unread.
    head = await _answer_before_body(limited.gateway, _upload_head(None, length=None))
    assert head.status == 401
    assert _blobs(limited.blob_dir) == []
    assert _spooled_files(limited.gateway, limited.spool_dir) == []


async def test_an_upload_over_the_cap_is_refused_before_it_is_all_read(
    limited: Limited, http: httpx.AsyncClient, app_env: dict[str, str]
) -> None:
    user = await new_user(http, "big")
    # Announced too large: refused on the head alone.
    head = await _answer_before_body(limited.gateway, _upload_head(user.token, length=BIG))
    assert head.status == 413
    # Not announced (chunked): refused once the bound is passed, long before
    # the 20 MB are sent.
    head, sent = await _stream_chunks(limited.gateway, _upload_head(user.token, length=None), BIG)
    assert head.status == 413, head
    assert sent < BIG // 2, f"{sent} bytes sent before the answer"
    await asyncio.sleep(0.5)
    assert _spooled_files(limited.gateway, limited.spool_dir) == []
    assert _blobs(limited.blob_dir) == []
    assert await _documents_of(app_env, user.username) == 0
    # Under the cap, the same user's upload goes through the same bounds.
    await upload(http, user, "small.txt", b"small enough " * 1000)
    assert await _documents_of(app_env, user.username) == 1


async def test_a_json_body_over_the_bound_is_refused(
    limited: Limited, http: httpx.AsyncClient
) -> None:
    user = await new_user(http, "json")
    body = {"message": "x" * 5000}
    response = await http.post("/api/chat", headers=user.headers, json=body)
    assert response.status_code == 413, response.text
    assert "4 KB" in response.json()["detail"]

    async def chunked() -> AsyncIterator[bytes]:
        yield json.dumps(body).encode()

    # No Content-Length: bounded as it streams in.
    response = await http.post("/api/chat", headers=user.headers, content=chunked())
    assert response.status_code == 413, response.text
    # Sign-in bodies too, before any password is hashed.
    big_login = {"username": "x", "password": "p" * 10_000}
    assert (await http.post("/api/auth/login", json=big_login)).status_code == 413


# --- rates ------------------------------------------------------------------------


def _retry_after(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    value = int(response.headers["retry-after"])
    assert 1 <= value <= 61
    return value


async def _login_elsewhere(http: httpx.AsyncClient, body: dict[str, str]) -> httpx.Response:
    # Each attempt from another address: the per-username limit counts them all.
    return await http.post("/api/auth/login", json=body, headers={"X-Forwarded-For": _ip()})


async def test_logins_for_one_username_are_limited_from_any_address(
    http: httpx.AsyncClient,
) -> None:
    await _fresh_window()
    ghost = {"username": f"ghost-{uuid.uuid4().hex[:8]}", "password": "guess-password"}
    codes = [(await _login_elsewhere(http, ghost)).status_code for _ in range(10)]
    assert codes == [401] * 10
    _retry_after(await _login_elsewhere(http, ghost))
    # A real account: registering counts too (1), then 9 wrong guesses; the
    # 11th attempt is refused even with the right password.
    real = {"username": f"real-{uuid.uuid4().hex[:8]}", "password": "a-long-password"}
    assert (await http.post("/api/auth/register", json=real)).status_code == 201
    wrong = {**real, "password": "wrong-password"}
    assert [(await _login_elsewhere(http, wrong)).status_code for _ in range(9)] == [401] * 9
    _retry_after(await _login_elsewhere(http, real))


async def test_sign_in_attempts_from_one_address_are_limited(http: httpx.AsyncClient) -> None:
    await _fresh_window()
    codes = []
    for _ in range(10):
        body = {"username": f"nobody-{uuid.uuid4().hex[:8]}", "password": "whatever-password"}
        codes.append((await http.post("/api/auth/login", json=body)).status_code)
    assert codes == [401] * 10
    fresh = {"username": f"new-{uuid.uuid4().hex[:8]}", "password": "a-long-password"}
    _retry_after(await http.post("/api/auth/register", json=fresh))
    _retry_after(await http.post("/api/auth/login", json=fresh))
    # Another address is not affected.
    other = await http.post("/api/auth/register", json=fresh, headers={"X-Forwarded-For": _ip()})
    assert other.status_code == 201, other.text


async def test_padded_usernames_share_one_sign_in_budget(http: httpx.AsyncClient) -> None:
    """Login strips the username before looking it up: so does the limit,
    or each padding of one name would be a fresh budget of guesses."""
    await _fresh_window()
    name = f"padded-{uuid.uuid4().hex[:8]}"
    real = {"username": name, "password": "a-long-password"}
    assert (await http.post("/api/auth/register", json=real)).status_code == 201
    variants = [f" {name}", f"{name} ", f"\t{name}\n", f"  {name}  ", f"\u3000{name}"]
    codes = []
    for i in range(9):  # with the registration, the whole budget of 10
        body = {"username": variants[i % len(variants)], "password": "wrong-password"}
        codes.append((await _login_elsewhere(http, body)).status_code)
    assert codes == [401] * 9
    for variant in [name, *variants]:
        after = await _login_elsewhere(http, {**real, "username": variant})
        assert _retry_after(after) >= 1, variant
        assert "for this user" in after.json()["detail"]
    # Usernames are case-sensitive: another case is another (here unknown)
    # account, with a budget of its own.
    upper = await _login_elsewhere(http, {**real, "username": name.upper()})
    assert upper.status_code == 401, upper.text


def _token(secret: str, **changes: object) -> str:
    """An access token as the gateway would sign it, with ``changes``."""
    now = int(time.time())
    claims = {
        "sub": str(uuid.uuid4()),
        "tid": str(uuid.uuid4()),
        "typ": "access",
        "fam": str(uuid.uuid4()),
        "jti": uuid.uuid4().hex,
        "iss": "ragstream",
        "aud": "ragstream",
        "iat": now,
        "exp": now + 600,
        **changes,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


async def test_failed_authentications_are_limited_per_address(
    limited: Limited, http: httpx.AsyncClient, app_env: dict[str, str]
) -> None:
    user = await new_user(http, "victim")
    await _fresh_window()
    attacker = {"X-Forwarded-For": _ip()}
    secret = app_env["SECRET_KEY"]
    bad = [
        _token("x" * 32),  # forged: another key
        _token(secret, exp=int(time.time()) - 60),  # expired
        _token(secret),  # well signed, but no such user or session
        "rsk_" + "B" * 43,  # a made-up API key
    ]
    codes = [
        (
            await http.get("/api/documents", headers={**attacker, "Authorization": f"Bearer {t}"})
        ).status_code
        for t in bad
    ]
    # An upload's credential is checked before its body is read: counted too.
    made_up = {**attacker, "Authorization": "Bearer rsk_" + "C" * 43}
    files = {"file": ("a.txt", b"a", "text/plain")}
    codes.append((await http.post("/api/documents", headers=made_up, files=files)).status_code)
    assert codes == [401] * 5
    # The address is over AUTH_FAILURES_PER_MINUTE (5): refused before any
    # check, a valid token and a refresh included.
    for headers in (user.headers, {"Authorization": f"Bearer {bad[3]}"}):
        _retry_after(await http.get("/api/documents", headers={**attacker, **headers}))
    # Refused before its body is read, yet read by the client every time
    # (a socket closed on unread bytes is reset, and the refusal with it).
    for _ in range(20):
        _retry_after(await http.post("/api/documents", headers=made_up, files=files))
    _retry_after(
        await http.post("/api/auth/refresh", headers=attacker, json={"refresh_token": bad[0]})
    )
    # Another address: its bad token is a 401, the valid token is served.
    bystander = {"X-Forwarded-For": _ip()}
    forged = {**bystander, "Authorization": f"Bearer {bad[0]}"}
    assert (await http.get("/api/documents", headers=forged)).status_code == 401
    served = await http.get("/api/documents", headers={**bystander, **user.headers})
    assert served.status_code == 200, served.text


async def test_requests_per_user_are_limited(http: httpx.AsyncClient) -> None:
    user, other = await new_user(http, "busy"), await new_user(http, "calm")
    await _fresh_window()
    codes = [
        (await http.get("/api/documents", headers=user.headers)).status_code for _ in range(20)
    ]
    assert codes == [200] * 20
    _retry_after(await http.get("/api/documents", headers=user.headers))
    _retry_after(await http.get("/api/chat/history", headers=user.headers))
    # Per user: another one is served.
    assert (await http.get("/api/documents", headers=other.headers)).status_code == 200


async def test_refreshes_count_against_the_request_rate(http: httpx.AsyncClient) -> None:
    body = {"username": f"loop-{uuid.uuid4().hex[:8]}", "password": "a-long-password"}
    assert (await http.post("/api/auth/register", json=body)).status_code == 201
    await _fresh_window()
    pair = (await http.post("/api/auth/login", json=body)).json()
    for _ in range(20):
        answer = await http.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert answer.status_code == 200, answer.text
        pair = answer.json()
    _retry_after(
        await http.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    )


async def test_concurrent_streams_per_user_are_capped(http: httpx.AsyncClient) -> None:
    user = await new_user(http, "streams")
    first_body = {"message": "anyone there?", "stream_timeout": 3}
    async with http.stream(
        "POST", "/api/chat/stream", headers=user.headers, json=first_body
    ) as first:
        assert first.status_code == 200
        second = await http.post("/api/chat/stream", headers=user.headers, json=first_body)
        assert _retry_after(second) >= 1
        assert "at most 1" in second.json()["detail"]
        # A whole answer is read by the gateway as a stream: capped the same.
        whole = await http.post("/api/chat", headers=user.headers, json=first_body)
        assert _retry_after(whole) >= 1
        text = (await first.aread()).decode()
    assert "event: timeout" in text  # the first ended on its own: its slot is free
    response, _ = await stream_chat(http, user, {"message": "again?", "stream_timeout": 1})
    assert response.status_code == 200
    # A stream the client walks away from frees its slot too.
    async with http.stream(
        "POST", "/api/chat/stream", headers=user.headers, json=first_body
    ) as left:
        assert left.status_code == 200
    await _until_stream_allowed(http, user.headers)


async def test_a_search_holds_a_stream_slot_and_ends_at_its_timeout(
    http: httpx.AsyncClient,
) -> None:
    """POST /api/search is limited like a chat: it takes one of the user's
    MAX_CONCURRENT_STREAMS while it waits. No worker reads this gateway's
    topics, so a search waits for its whole `timeout`, then 504."""
    user = await new_user(http, "searches")
    async with http.stream(
        "POST",
        "/api/chat/stream",
        headers=user.headers,
        json={"message": "hi", "stream_timeout": 3},
    ) as first:
        assert first.status_code == 200
        busy = await http.post("/api/search", headers=user.headers, json={"query": "x"})
        assert "at most 1" in busy.json()["detail"] and _retry_after(busy) >= 1
        await first.aread()
    async with asyncio.timeout(10):
        while True:
            started = time.monotonic()
            late = await http.post(
                "/api/search", headers=user.headers, json={"query": "x", "timeout": 1}
            )
            if late.status_code != 429:  # the stream's slot is given back moments later
                break
            await asyncio.sleep(0.2)
    assert late.status_code == 504, late.text
    assert "no passages within 1 seconds" in late.json()["detail"]
    assert 1 <= time.monotonic() - started < 5
    # ... and gave its slot back.
    await _until_stream_allowed(http, user.headers)


async def _until_stream_allowed(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """The slot of a stream the client left is freed moments later."""
    async with asyncio.timeout(10):
        while True:
            async with http.stream(
                "POST", "/api/chat/stream", headers=headers, json={"message": "free?"}
            ) as probe:
                if probe.status_code == 200:
                    return
            await asyncio.sleep(0.2)


# --- headers ----------------------------------------------------------------------


def _check_security_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    user = await new_user(client, "headers")
    health = await client.get("/health")
    assert health.status_code == 200
    _check_security_headers(health)
    assert "no-store" not in health.headers.get("cache-control", "")
    no_such_document = "/api/documents/00000000-0000-0000-0000-000000000000"
    for response, status in (
        (await client.get("/api/documents", headers=user.headers), 200),
        (await client.get("/api/documents"), 401),
        (await client.get(no_such_document, headers=user.headers), 404),
        (await client.get("/no/such/page", headers=user.headers), 404),
    ):
        assert response.status_code == status, response.text
        _check_security_headers(response)
        assert response.headers["cache-control"] == "no-store"


async def test_no_cors_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers
    preflight = await client.options(
        "/api/documents",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_configured_origin_is_allowed(http: httpx.AsyncClient) -> None:
    user = await new_user(http, "cors")
    allowed = await http.get("/api/documents", headers={**user.headers, "Origin": ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    preflight = await http.options(
        "/api/documents",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    other = await http.get(
        "/api/documents", headers={**user.headers, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers
    # A refusal carries them too, so the page can read why.
    refused = await http.get("/api/documents", headers={"Origin": ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN


# --- without Redis ------------------------------------------------------------------


async def test_without_redis_limits_fail_open_and_chats_work(
    app_env: dict[str, str], log_dir: Path, workers: list[Component]
) -> None:
    env = {
        **app_env,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        "GATEWAY_REPLY_PARTITION": "0",  # no lease: that needs Redis
        "LOGIN_ATTEMPTS_PER_MINUTE": "1",
        "AUTH_FAILURES_PER_MINUTE": "1",
        "REQUESTS_PER_MINUTE": "1",
        "MAX_CONCURRENT_STREAMS": "1",
    }
    gateway = start_gateway("gateway-no-redis", env, log_dir)
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as http:
            user = await new_user(http, "noredis")  # two sign-ins over a limit of 1
            made_up = {"Authorization": "Bearer rsk_" + "D" * 43}
            for _ in range(3):  # failed authentications over a limit of 1
                assert (await http.get("/api/documents", headers=made_up)).status_code == 401
            for _ in range(3):
                assert (await http.get("/api/documents", headers=user.headers)).status_code == 200
            response, events = await stream_chat(http, user, {"message": "still there?"})
            assert response.status_code == 200
            assert events and events[-1].event == "done", [e.event for e in events]
        assert "Limits not enforced: Redis unavailable" in gateway.log()
    finally:
        gateway.stop()
