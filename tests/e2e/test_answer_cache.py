"""The answer cache (RAG_USE_CACHE) on the real stack: a repeated question is
answered from Redis, per user and per tenant, until the tenant's corpus or
the question's options change."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import User, new_user, upload, wait_for_status
from tests.support.processes import Component, side_stack

BADGES = b"# Security\n\nVisitor badges are collected at the front desk by 6pm every day.\n"
PARKING = b"# Parking\n\nThe visitor car park closes at 8pm; the barrier code is 4471.\n"


@pytest.fixture(scope="module")
def cache_stack(
    app_env: dict[str, str], log_dir: Path, workers: list[Component]
) -> Iterator[tuple[Component, Component]]:
    # The default stack's ingest worker indexes (and so invalidates) for this one.
    with side_stack(app_env, log_dir, "cache", RAG_USE_CACHE="true") as stack:
        yield stack


@pytest.fixture
async def cache_client(
    cache_stack: tuple[Component, Component],
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cache_stack[0].base_url or "", timeout=60) as http:
        yield http


def _answered(query: Component, correlation_id: str) -> dict[str, Any] | None:
    for line in query.log().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if (
                event.get("event") == "Chat answered"
                and event.get("correlation_id") == correlation_id
            ):
                return event
    return None


async def _ask(
    client: httpx.AsyncClient, query: Component, user: User, message: str, **options: Any
) -> tuple[dict[str, Any], bool]:
    """The answer, and whether the worker took it from the cache."""
    correlation_id = uuid.uuid4().hex
    response = await client.post(
        "/api/chat",
        headers={**user.headers, "X-Request-ID": correlation_id},
        json={"message": message, **options},
    )
    assert response.status_code == 200, response.text
    # The worker logs the answer just after sending its last event.
    deadline = time.monotonic() + 10
    while (answered := _answered(query, correlation_id)) is None:
        assert time.monotonic() < deadline, f"no 'Chat answered' for {correlation_id}"
        await asyncio.sleep(0.05)
    return response.json(), bool(answered["cached"])


async def test_repeated_questions_come_from_the_cache_until_the_corpus_changes(
    client: httpx.AsyncClient,
    cache_client: httpx.AsyncClient,
    cache_stack: tuple[Component, Component],
) -> None:
    query = cache_stack[1]
    user = await new_user(client)
    doc = await upload(client, user, "security.md", BADGES)
    assert (await wait_for_status(client, user, doc))["status"] == "indexed"
    question = "When are visitor badges collected?"

    first, cached = await _ask(cache_client, query, user, question)
    assert not cached
    assert "6pm" in first["answer"]
    # Case and spacing do not make another question.
    again, cached = await _ask(cache_client, query, user, "  when are visitor BADGES collected? ")
    assert cached
    assert (again["answer"], again["sources"]) == (first["answer"], first["sources"])

    # Other options are another answer.
    _, cached = await _ask(cache_client, query, user, question, top_k=1)
    assert not cached
    _, cached = await _ask(cache_client, query, user, question, retrieval="lexical")
    assert not cached
    # Filters are part of the key: another filter is another answer, the
    # same filter written in another order the same one.
    none, cached = await _ask(cache_client, query, user, question, filters={"tags_any": ["x", "y"]})
    assert not cached and none["sources"] == []
    _, cached = await _ask(cache_client, query, user, question, filters={"tags_any": ["y", "x"]})
    assert cached

    # Another tenant asking the same never gets this tenant's cached answer.
    stranger = await new_user(client)
    theirs, cached = await _ask(cache_client, query, stranger, question)
    assert not cached
    assert theirs["sources"] == []

    # A new document in the tenant invalidates its cached answers.
    doc = await upload(client, user, "parking.md", PARKING)
    assert (await wait_for_status(client, user, doc))["status"] == "indexed"
    after, cached = await _ask(cache_client, query, user, question)
    assert not cached
    assert {s["filename"] for s in after["sources"]} == {"security.md", "parking.md"}
    _, cached = await _ask(cache_client, query, user, question)
    assert cached

    # So does a deletion: the answer citing the deleted page is never served.
    deleted = await client.delete(f"/api/documents/{doc}", headers=user.headers)
    assert deleted.status_code == 204
    after_delete, cached = await _ask(cache_client, query, user, question)
    assert not cached
    assert {s["filename"] for s in after_delete["sources"]} == {"security.md"}
