"""The benchmark's side of the HTTP API: set-up calls through httpx, and chat
streams through a small raw HTTP/1.1 client on asyncio streams.

The raw client exists because the clients are timed: at thousands of SSE
events a second, a full HTTP library in the same process would be measured
as much as the gateway. It notes the moment the first ``token`` event and the
terminal event arrive, then parses the body once the stream is over.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx

PASSWORD = "bench-password-long-enough"  # noqa: S105  (throwaway benchmark users)
_TERMINALS = (b"event: done", b"event: error", b"event: timeout")


@dataclass(frozen=True)
class Account:
    token: str
    tenant_id: str
    user_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def sign_up(http: httpx.AsyncClient, prefix: str = "bench") -> Account:
    body = {"username": f"{prefix}-{uuid.uuid4().hex[:10]}", "password": PASSWORD}
    created = await http.post("/api/auth/register", json=body)
    created.raise_for_status()
    login = await http.post("/api/auth/login", json=body)
    login.raise_for_status()
    made = created.json()
    return Account(login.json()["access_token"], made["tenant_id"], made["id"])


async def upload(http: httpx.AsyncClient, account: Account, name: str, content: bytes) -> str:
    response = await http.post(
        "/api/documents", headers=account.headers, files={"file": (name, content, "text/plain")}
    )
    if response.status_code != 202:
        raise RuntimeError(f"upload of {name} refused: {response.status_code} {response.text}")
    doc_id: str = response.json()["id"]
    return doc_id


async def wait_indexed(
    http: httpx.AsyncClient,
    account: Account,
    doc_ids: list[str],
    seconds: float,
    every: float = 0.1,
) -> list[dict[str, Any]]:
    """Every document's row once all are indexed (raises if one failed). The
    account's list, page by page (500 a page), every ``every`` seconds, so
    polling costs the gateway little while it is timed."""
    wanted = set(doc_ids)
    async with asyncio.timeout(seconds):
        while True:
            rows = {d["id"]: d for d in await _all_documents(http, account) if d["id"] in wanted}
            failed = [d for d in rows.values() if d["status"] == "failed"]
            if failed:
                raise RuntimeError(f"document {failed[0]['id']} failed: {failed[0].get('error')}")
            if len(rows) == len(wanted) and all(d["status"] == "indexed" for d in rows.values()):
                return [rows[d] for d in doc_ids]
            await asyncio.sleep(every)


async def _all_documents(http: httpx.AsyncClient, account: Account) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        response = await http.get(
            "/api/documents", headers=account.headers, params={"limit": 500, "offset": len(rows)}
        )
        response.raise_for_status()
        page: list[dict[str, Any]] = response.json()
        rows += page
        if len(page) < 500:
            return rows


async def wait_one_indexed(
    http: httpx.AsyncClient, account: Account, doc_id: str, seconds: float
) -> dict[str, Any]:
    """One document's row once indexed (raises if it failed): a single-row
    read per poll, whatever else the account has."""
    async with asyncio.timeout(seconds):
        while True:
            response = await http.get(f"/api/documents/{doc_id}", headers=account.headers)
            response.raise_for_status()
            row: dict[str, Any] = response.json()
            if row["status"] == "failed":
                raise RuntimeError(f"document {doc_id} failed: {row.get('error')}")
            if row["status"] == "indexed":
                return row
            await asyncio.sleep(0.1)


@dataclass
class StreamResult:
    status: int
    ttft: float | None  # seconds from the request to the first token event
    ttlt: float  # seconds from the request to the terminal event
    terminal: str
    tokens: int  # "tok"s in the token events (the stub LLM's tokens)
    events: int
    last: str = ""  # the last event's data: why an error ended the stream


def _request(
    url: str, token: str, body: dict[str, Any], request_id: str | None = None
) -> tuple[str, int, bytes]:
    parsed = urlparse(url)
    payload = json.dumps(body).encode()
    named = f"X-Request-ID: {request_id}\r\n" if request_id else ""
    head = (
        f"POST /api/chat/stream HTTP/1.1\r\nHost: {parsed.netloc}\r\n{named}"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return parsed.hostname or "127.0.0.1", parsed.port or 80, head.encode() + payload


def _dechunk(raw: bytes) -> bytes:
    out, pos = bytearray(), 0
    while pos < len(raw):
        end = raw.find(b"\r\n", pos)
        if end < 0:
            break
        size = int(raw[pos:end].split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += raw[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2
    return bytes(out)


def parse_events(body: bytes) -> list[tuple[str, str]]:
    events = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = "message", []
        for line in block.decode(errors="replace").split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if data:
            events.append((name, "\n".join(data)))
    return events


async def stream_chat(url: str, token: str, body: dict[str, Any]) -> StreamResult:
    host, port, request = _request(url, token, body)
    began = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        raw = bytearray()
        first: float | None = None
        while True:
            data = await reader.read(65536)
            if not data:
                break
            look_from = max(0, len(raw) - 16)
            raw += data
            if first is None and raw.find(b"event: token", look_from) >= 0:
                first = time.perf_counter() - began
            if any(raw.find(t, look_from) >= 0 for t in _TERMINALS):
                break
        last = time.perf_counter() - began
    finally:
        writer.close()
    return _result(bytes(raw), first, last)


def _result(raw: bytes, first: float | None, last: float) -> StreamResult:
    head, _, rest = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    body = _dechunk(rest) if b"transfer-encoding: chunked" in head.lower() else rest
    events = parse_events(body)
    tokens = sum(json.loads(data)["text"].count("tok") for name, data in events if name == "token")
    terminal = next((n for n, _ in reversed(events) if n in ("done", "error", "timeout")), "none")
    detail = events[-1][1][:300] if events else body[:300].decode(errors="replace")
    return StreamResult(status, first, last, terminal, tokens, len(events), detail)


class OpenStream:
    """A chat stream held open without reading on: for counting how many one
    gateway holds. ``open()`` returns once the response headers are in."""

    def __init__(self) -> None:
        self.writer: asyncio.StreamWriter | None = None
        self.status = 0
        self.phase = "connecting"  # then "waiting" (request sent), then "open"

    async def open(
        self, url: str, token: str, body: dict[str, Any], request_id: str | None = None
    ) -> int:
        """``request_id`` (sent as X-Request-ID) finds the stream in the gateway's log."""
        host, port, request = _request(url, token, body, request_id)
        reader, self.writer = await asyncio.open_connection(host, port)
        self.writer.write(request)
        self.phase = "waiting"
        head = await reader.readuntil(b"\r\n\r\n")
        self.phase = "open"
        self.status = int(head.split(b" ", 2)[1])
        return self.status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
