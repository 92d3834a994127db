"""Filters (issue 22) never widen what a caller can see, and a filter on
labels the caller cannot see leaks nothing: it answers exactly as a filter
that matches nothing does, on search, chat and /v1.

The victim labels a private document and a document shared with the tenant
(one at upload, one by PATCH); the insider (same tenant) and the outsider
(another tenant, labelling their own document with the very same tag) try
to reach them through the labels."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.adversarial.conftest import World
from tests.support.api import User, wait_for_status
from tests.support.processes import Component

CODE = f"OSPREY-{uuid.uuid4().hex[:8]}"
PRIVATE = f"The launch window for project {CODE} opens on the ninth of March.".encode()
SHARED = f"The offsite for project {CODE} is in the harbour hall.".encode()
OWN = f"My own notes on project {CODE}: nothing about launches.".encode()
TAG = f"osprey-{uuid.uuid4().hex[:6]}"
QUESTION = f"When does the launch window for project {CODE} open?"


@dataclass
class Labelled:
    private_id: str
    shared_id: str
    outsider_own_id: str


async def _upload(
    client: httpx.AsyncClient, user: User, name: str, data: bytes, **form: Any
) -> str:
    response = await client.post(
        "/api/documents",
        headers=user.headers,
        files={"file": (name, data, "text/plain")},
        data=form,
    )
    assert response.status_code == 202, response.text
    doc_id: str = response.json()["id"]
    assert (await wait_for_status(client, user, doc_id))["status"] == "indexed"
    return doc_id


@pytest.fixture(scope="module")
async def labelled(world: World, gateway: Component) -> Labelled:
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=60) as client:
        private = await _upload(
            client, world.victim, "launch.txt", PRIVATE, tags=[TAG, "secret"], meta="project=osprey"
        )
        shared = await _upload(client, world.victim, "offsite.txt", SHARED)
        patch = await client.patch(
            f"/api/documents/{shared}",
            headers=world.victim.headers,
            json={"visibility": "tenant", "tags": [TAG, "offsite"], "meta": {"project": "osprey"}},
        )
        assert patch.status_code == 200, patch.text
        own = await _upload(client, world.outsider, "notes.txt", OWN, tags=TAG)
    return Labelled(private, shared, own)


FILTERS: list[dict[str, Any]] = [
    {"tags_any": [TAG]},
    {"tags_any": ["secret"]},
    {"tags_all": [TAG, "secret"]},
    {"meta": {"project": "osprey"}},
    {"filename": "launch.txt"},
    {"tags_any": ["secret", "offsite"], "meta": {"project": "osprey"}},
]
NOTHING = {"tags_any": [f"no-such-tag-{uuid.uuid4().hex[:6]}"]}
MODES = [{"retrieval": mode, "reranking": "none"} for mode in ("hybrid", "dense", "lexical")]


async def _search(client: httpx.AsyncClient, actor: User, body: dict[str, Any]) -> Any:
    response = await client.post("/api/search", headers=actor.headers, json=body, timeout=60)
    return response.status_code, response.json()


async def _chat(client: httpx.AsyncClient, actor: User, body: dict[str, Any]) -> Any:
    response = await client.post("/api/chat", headers=actor.headers, json=body, timeout=60)
    answer = response.json()
    return response.status_code, answer.get("answer"), answer.get("sources"), answer.get("cited")


async def test_the_owner_and_the_insider_find_what_they_may(
    client: httpx.AsyncClient, world: World, labelled: Labelled
) -> None:
    """The controls: the filters do find the victim's documents for those
    who may read them, so finding nothing for others means the filter held."""
    for mode in MODES:
        status, found = await _search(
            client, world.victim, {"query": QUESTION, "filters": {"tags_any": [TAG]}, **mode}
        )
        assert status == 200
        ids = {p["document_id"] for p in found["passages"]}
        assert {labelled.private_id, labelled.shared_id} <= ids, mode
        status, found = await _search(
            client, world.insider, {"query": QUESTION, "filters": {"tags_any": [TAG]}, **mode}
        )
        assert {p["document_id"] for p in found["passages"]} == {labelled.shared_id}, mode


@pytest.mark.parametrize("attacker", ["outsider", "insider"])
async def test_no_filter_reaches_a_document_the_caller_cannot_read(
    client: httpx.AsyncClient, world: World, labelled: Labelled, attacker: str
) -> None:
    actor: User = getattr(world, attacker)
    hidden = {labelled.private_id, world.document_id}
    if attacker == "outsider":
        hidden.add(labelled.shared_id)
    for mode in MODES:
        for filters in FILTERS:
            for named in (None, sorted(hidden)):
                body: dict[str, Any] = {"query": QUESTION, "filters": filters, **mode}
                if named:
                    body["document_ids"] = named
                status, found = await _search(client, actor, body)
                assert status == 200, found
                ids = {p["document_id"] for p in found["passages"]}
                assert not ids & hidden, (attacker, mode, filters, named)
                assert "ninth of March" not in str(found)


async def test_a_filter_on_labels_the_caller_cannot_see_answers_as_no_match(
    client: httpx.AsyncClient, world: World, labelled: Labelled
) -> None:
    """The outsider probes for the victim's labels: the answer is the one a
    made-up label gets, so it says nothing about whether they exist."""
    outsider = world.outsider
    for probe in (
        {"tags_any": ["secret"]},
        {"meta": {"project": "osprey"}},
        {"filename": "launch.txt"},
    ):
        for mode in MODES:
            body = {"query": QUESTION, **mode}
            assert (
                await _search(client, outsider, {**body, "filters": probe})
                == await _search(client, outsider, {**body, "filters": NOTHING})
                == (200, {"query": QUESTION, "passages": []})
            ), (probe, mode)
        chat = {"message": QUESTION}
        probed = await _chat(client, outsider, {**chat, "filters": probe})
        assert probed == await _chat(client, outsider, {**chat, "filters": NOTHING})
        assert probed[0] == 200 and probed[2] == [] and probed[3] == []
        completion = {"model": "ragstream", "messages": [{"role": "user", "content": QUESTION}]}
        answers = []
        for filters in (probe, NOTHING):
            response = await client.post(
                "/v1/chat/completions",
                headers=outsider.headers,
                json={**completion, "filters": filters},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            answers.append((body["choices"][0]["message"]["content"], body["sources"]))
        assert answers[0] == answers[1] and answers[0][1] == []


async def test_a_shared_tag_finds_only_the_callers_own_document(
    client: httpx.AsyncClient, world: World, labelled: Labelled
) -> None:
    """The outsider tagged their own document with the victim's tag: the tag
    finds theirs, never the victim's, in every mode and through chat."""
    for mode in MODES:
        status, found = await _search(
            client, world.outsider, {"query": QUESTION, "filters": {"tags_any": [TAG]}, **mode}
        )
        assert status == 200
        assert {p["document_id"] for p in found["passages"]} == {labelled.outsider_own_id}, mode
    status, answer, sources, _ = await _chat(
        client, world.outsider, {"message": QUESTION, "filters": {"tags_any": [TAG]}}
    )
    assert status == 200
    assert {s["document_id"] for s in sources} <= {labelled.outsider_own_id}
    assert "ninth of March" not in answer and "harbour" not in answer
