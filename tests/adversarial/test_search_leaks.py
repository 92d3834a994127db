"""POST /api/search never shows a passage its caller may not read: not the
victim's private document (to a colleague or another tenant), not a document
shared with another tenant, not when its id is named, in any retrieval mode
or reranking. The search runs on a query worker: this is the worker's filter
and the gateway's reply routing under test, as chat's are in test_chat_leaks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.adversarial.conftest import SECRET, SECRET_CODE, SHARED, SHARED_CODE, World
from tests.adversarial.test_chat_leaks import QUESTIONS, leaks
from tests.support.api import User

MODES = [
    {"retrieval": "hybrid", "reranking": "none"},
    {"retrieval": "dense", "reranking": "none"},
    {"retrieval": "lexical", "reranking": "none"},
    {"retrieval": "hybrid", "reranking": "cross-encoder"},
    {"retrieval": "hybrid", "reranking": "mmr"},
]


async def search(
    client: httpx.AsyncClient, actor: User, body: dict[str, Any]
) -> tuple[int, list[dict[str, Any]]]:
    response = await client.post("/api/search", headers=actor.headers, json=body, timeout=60)
    if response.status_code != 200:
        return response.status_code, []
    return 200, response.json()["passages"]


def assert_hidden(world: World, status: int, passages: list[dict[str, Any]], label: str) -> None:
    assert status < 500, (label, status)
    for passage in passages:
        assert passage["document_id"] != world.document_id, (label, passage)
        assert not leaks(str(passage)), (label, passage)


async def test_the_owner_finds_the_secret_in_every_mode(
    client: httpx.AsyncClient, world: World
) -> None:
    """The control: these searches find the secret for its owner, so
    finding nothing for others means the filter worked."""
    for mode in MODES:
        status, passages = await search(client, world.victim, {"query": SECRET, **mode})
        assert status == 200
        assert passages and passages[0]["document_id"] == world.document_id, (mode, passages)
        assert SECRET_CODE in passages[0]["text"]


@pytest.mark.parametrize("attacker", ["outsider", "insider"])
async def test_another_user_cannot_find_the_secret(
    client: httpx.AsyncClient, world: World, attacker: str
) -> None:
    actor: User = getattr(world, attacker)
    for mode in MODES:
        for question in (*QUESTIONS, SECRET_CODE):
            for named in (None, [world.document_id]):
                body = {"query": question, **mode}
                if named:
                    body["document_ids"] = named  # narrows a search, never widens it
                status, passages = await search(client, actor, body)
                assert_hidden(world, status, passages, f"{attacker} {mode} {question} {named}")


async def test_a_shared_document_is_found_in_its_tenant_and_no_other(
    client: httpx.AsyncClient, world: World
) -> None:
    status, passages = await search(client, world.insider, {"query": SHARED})
    assert status == 200
    assert world.shared_document_id in {p["document_id"] for p in passages}
    for body in (
        {"query": SHARED},
        {"query": SHARED_CODE, "retrieval": "lexical"},
        {"query": SHARED, "document_ids": [world.shared_document_id]},
    ):
        status, passages = await search(client, world.outsider, body)
        assert status == 200
        assert world.shared_document_id not in {p["document_id"] for p in passages}
        assert not [p for p in passages if SHARED_CODE in str(p)], passages


async def test_naming_only_unreadable_documents_finds_nothing_and_says_nothing(
    client: httpx.AsyncClient, world: World
) -> None:
    """Naming the victim's document answers as naming one that does not
    exist: an empty list, not an error that would confirm it exists."""
    body = {"query": SECRET, "document_ids": [world.document_id]}
    assert await search(client, world.outsider, body) == (200, [])
    missing = {"query": SECRET, "document_ids": ["00000000-0000-4000-8000-000000000000"]}
    assert await search(client, world.outsider, missing) == (200, [])
