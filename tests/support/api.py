"""A small client for the HTTP API, written from the issue's text."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from argon2 import PasswordHasher

from gateway.identity import users

PASSWORD = "a-long-password"


@dataclass
class User:
    username: str
    token: str
    id: str
    tenant_id: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def new_user(client: httpx.AsyncClient, prefix: str = "user") -> User:
    username = f"{prefix}-{uuid.uuid4().hex[:10]}"
    body = {"username": username, "password": PASSWORD}
    created = await client.post("/api/auth/register", json=body)
    assert created.status_code == 201, created.text
    login = await client.post("/api/auth/login", json=body)
    assert login.status_code == 200, login.text
    return User(
        username, login.json()["access_token"], created.json()["id"], created.json()["tenant_id"]
    )


async def member_of(
    client: httpx.AsyncClient, pool: asyncpg.Pool, tenant_id: str, prefix: str = "member"
) -> User:
    """A signed-in member of an existing tenant, created in the database the
    way `rag user create` does."""
    username = f"{prefix}-{uuid.uuid4().hex[:10]}"
    hashed = await asyncio.to_thread(PasswordHasher().hash, PASSWORD)
    made = await users.create(pool, username, hashed, tenant_id=uuid.UUID(tenant_id))
    login = await client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return User(username, login.json()["access_token"], str(made.id), tenant_id)


async def upload(
    client: httpx.AsyncClient,
    user: User,
    filename: str,
    content: bytes,
    lane: str = "interactive",
) -> str:
    response = await client.post(
        "/api/documents",
        headers=user.headers,
        files={"file": (filename, content, "text/plain")},
        data={"lane": lane},
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    assert response.json()["lane"] == lane
    doc_id: str = response.json()["id"]
    return doc_id


async def wait_for_status(
    client: httpx.AsyncClient, user: User, doc_id: str, timeout: float = 60
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get(f"/api/documents/{doc_id}", headers=user.headers)
            assert response.status_code == 200, response.text
            doc: dict[str, Any] = response.json()
            if doc["status"] in ("indexed", "failed"):
                return doc
            await asyncio.sleep(0.2)


@dataclass
class SseEvent:
    event: str
    data: Any


def parse_sse(text: str) -> list[SseEvent]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if data:
            events.append(SseEvent(name, json.loads("\n".join(data))))
    return events


async def stream_chat(
    client: httpx.AsyncClient, user: User, body: dict[str, Any]
) -> tuple[httpx.Response, list[SseEvent]]:
    async with client.stream(
        "POST", "/api/chat/stream", headers=user.headers, json=body, timeout=60
    ) as response:
        text = (await response.aread()).decode()
    return response, parse_sse(text) if response.status_code == 200 else []


def answer_text(events: list[SseEvent]) -> str:
    return "".join(e.data["text"] for e in events if e.event == "token")
