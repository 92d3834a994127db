"""``GET /api/documents/events``: a snapshot, then each status change as it
happens, only to those who may read the document; pings; a clean end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.api import User, member_of, new_user, upload, wait_for_status
from tests.support.kafka import document_row, ingest_request_for, publish_ingest
from tests.support.processes import Component, start_gateway

Status = dict[str, Any]


@dataclass
class DocStream:
    """One open ``/api/documents/events``, read in the background."""

    response: httpx.Response
    events: list[Status] = field(default_factory=list)
    pings: int = 0
    ended: bool = False
    # The reason of a final ``event: ended``, when the stream had one.
    end_reason: str | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        event, data = "message", ""
        async for line in self.response.aiter_lines():
            if line == ": ping":
                self.pings += 1
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and data and event == "ended":
                self.end_reason = json.loads(data)["reason"]
                event, data = "message", ""
            elif line == "" and data:
                assert event == "status", event
                self.events.append(json.loads(data))
                event, data = "message", ""
            self._changed.set()
        self.ended = True
        self._changed.set()

    async def until(self, done: Callable[[DocStream], bool], timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            while not done(self):
                self._changed.clear()
                await self._changed.wait()

    def of(self, doc_id: str) -> list[Status]:
        return [e for e in self.events if e["document_id"] == doc_id]

    def statuses(self, doc_id: str) -> list[str]:
        return [e["status"] for e in self.of(doc_id)]


@contextlib.asynccontextmanager
async def doc_stream(client: httpx.AsyncClient, user: User) -> AsyncIterator[DocStream]:
    async with client.stream(
        "GET", "/api/documents/events", headers=user.headers, timeout=httpx.Timeout(60, read=None)
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = DocStream(response)
        reader = asyncio.create_task(stream.read())
        try:
            yield stream
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await reader


def _indexed(doc_id: str, times: int = 1) -> Callable[[DocStream], bool]:
    return lambda s: s.statuses(doc_id).count("indexed") >= times


@pytest.fixture
async def db(app_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(app_env["DATABASE_URL"], min_size=1, max_size=2)
    assert pool is not None
    yield pool
    await pool.close()


async def test_a_snapshot_then_queued_processing_indexed_in_order(
    client: httpx.AsyncClient,
) -> None:
    user = await new_user(client, "events")
    anonymous = await client.get("/api/documents/events")
    assert anonymous.status_code == 401
    first = await upload(client, user, "first.txt", b"The first document of the stream.")
    assert (await wait_for_status(client, user, first))["status"] == "indexed"

    async with doc_stream(client, user) as stream:
        # The snapshot: the document as it stands, before any change.
        await stream.until(lambda s: len(s.events) >= 1)
        [snapshot] = stream.events
        assert snapshot["document_id"] == first and snapshot["filename"] == "first.txt"
        assert snapshot["status"] == "indexed" and snapshot["error"] is None
        assert isinstance(snapshot["chunks"], int) and snapshot["chunks"] >= 1

        started = time.monotonic()
        second = await upload(client, user, "second.txt", b"Travel claims need receipts.")
        await stream.until(_indexed(second))
        seen_in = time.monotonic() - started

    assert stream.statuses(second) == ["queued", "processing", "indexed"]
    events = stream.of(second)
    assert {e["filename"] for e in events} == {"second.txt"}
    assert [e["chunks"] for e in events[:2]] == [None, None] and events[2]["chunks"] >= 1
    assert all(e["error"] is None for e in events)
    times = [datetime.fromisoformat(e["at"]) for e in events]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)
    stored = await wait_for_status(client, user, second)
    assert events[2]["chunks"] == stored["chunks"]
    print(f"upload to indexed on the stream: {seen_in:.2f} s; events {stream.statuses(second)}")


async def test_a_failed_document_shows_its_reason(client: httpx.AsyncClient) -> None:
    user = await new_user(client, "events-fail")
    async with doc_stream(client, user) as stream:
        doc_id = await upload(client, user, "latin1.txt", "café crème".encode("latin-1"))
        await stream.until(lambda s: "failed" in s.statuses(doc_id))
    [failed] = [e for e in stream.of(doc_id) if e["status"] == "failed"]
    assert "not UTF-8" in failed["error"]
    assert failed["chunks"] is None and failed["filename"] == "latin1.txt"
    assert stream.statuses(doc_id)[0] == "queued"


async def test_only_those_who_may_read_a_document_see_it_change(
    app_env: dict[str, str], client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    owner = await new_user(client, "events-owner")
    teammate = await member_of(client, db, owner.tenant_id, "events-mate")
    stranger = await new_user(client, "events-stranger")
    assert stranger.tenant_id != owner.tenant_id
    async with (
        doc_stream(client, owner) as mine,
        doc_stream(client, teammate) as theirs,
        doc_stream(client, stranger) as other,
    ):
        private = await upload(client, owner, "private.txt", b"Private salary notes.")
        shared = await upload(client, owner, "shared.txt", b"Team holiday rota.")
        await mine.until(lambda s: _indexed(private)(s) and _indexed(shared)(s))
        patched = await client.patch(
            f"/api/documents/{shared}", headers=owner.headers, json={"visibility": "tenant"}
        )
        assert patched.status_code == 200, patched.text
        # New changes to both: an internal service asks for them again.
        for doc_id in (private, shared):
            row = await document_row(app_env["DATABASE_URL"], doc_id)
            await publish_ingest(app_env, ingest_request_for(row, "events-replay"))
        await mine.until(lambda s: _indexed(private, 2)(s) and _indexed(shared, 2)(s))
        await theirs.until(_indexed(shared))
        # The stranger's stream stays open and quiet but for the pings.
        await other.until(lambda s: s.pings >= 1, timeout=20)
    assert theirs.statuses(shared) == ["processing", "indexed"]
    assert theirs.of(private) == []
    assert other.events == []

    # A teammate connecting now gets the shared document in the snapshot,
    # never the private one.
    async with doc_stream(client, teammate) as later:
        await later.until(lambda s: len(s.events) >= 1)
        await asyncio.sleep(1)
    assert [(e["document_id"], e["status"]) for e in later.events] == [(shared, "indexed")]


@pytest.fixture
def own_gateway(app_env: dict[str, str], log_dir: Path) -> Iterator[Component]:
    gateway = start_gateway("gateway-doc-events", app_env, log_dir)
    try:
        yield gateway
    finally:
        gateway.stop()


def _subscribers(metrics: str) -> float:
    match = re.search(
        r"^rag_gateway_document_event_subscribers(?:\{[^}]*\})? (\S+)$", metrics, re.MULTILINE
    )
    assert match, "the subscriber gauge is not exported"
    return float(match.group(1))


async def test_streams_end_cleanly_on_disconnect_and_on_drain(own_gateway: Component) -> None:
    assert own_gateway.base_url is not None
    async with httpx.AsyncClient(base_url=own_gateway.base_url, timeout=30) as client:
        user = await new_user(client, "events-drain")
        async with doc_stream(client, user):
            assert _subscribers((await client.get("/metrics")).text) == 1
        await _until_metric(client, 0)

        async with doc_stream(client, user) as stream:
            await _until_metric(client, 1)
            own_gateway.process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            await stream.until(lambda s: s.ended, timeout=15)
            ended_in = time.monotonic() - started
    code = await asyncio.to_thread(own_gateway.process.wait, 30)
    # uvicorn re-raises the SIGTERM it handled once it is done: 0 or -15.
    assert code in (0, -signal.SIGTERM), own_gateway.log()[-3000:]
    # Ended by the stream itself, not cut by the server mid-response.
    assert "ASGI callable returned without completing response" not in own_gateway.log()
    assert "Traceback" not in own_gateway.log()
    assert ended_in < 5
    print(f"stream ended {ended_in:.2f} s after SIGTERM; gateway exit code {code}")


async def _until_metric(client: httpx.AsyncClient, value: float) -> None:
    async with asyncio.timeout(10):
        # Polling: the gauge is only seen over HTTP.
        while _subscribers((await client.get("/metrics")).text) != value:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def test_a_reindex_shows_queued_processing_indexed_again(
    client: httpx.AsyncClient, app_env: dict[str, str]
) -> None:
    user = await new_user(client, "reindexed")
    doc_id = await upload(client, user, "policy.txt", b"Badges are returned at reception.")
    assert (await wait_for_status(client, user, doc_id))["status"] == "indexed"
    async with doc_stream(client, user) as stream:
        await stream.until(lambda s: len(s.events) >= 1)  # the snapshot
        reindex = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("rag")),
            "reindex",
            "--tenant",
            f"self-{user.tenant_id}",
            env={**os.environ, **app_env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(reindex.communicate(), 120)
        assert reindex.returncode == 0, output.decode()
        await stream.until(_indexed(doc_id, times=2))
    assert stream.statuses(doc_id) == ["indexed", "queued", "processing", "indexed"]
