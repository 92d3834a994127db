"""POST /api/search through the gateway and a query worker: ranked passages
with each stage's score, the chat's options, its refusals, and its limits."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.api import User, new_user, upload, wait_for_status

LEAVE = b"""# Benefits

## Parental leave

Parents receive sixteen weeks of paid parental leave after a birth or an adoption.
The leave can be divided into at most three blocks, taken before the child turns two.
"""
ERRORS = b"""# Payment errors

If the terminal shows code ZX-4417, the card reader lost its connection to the bank.
Restart the terminal and wait for the green light before taking another payment.
"""
LAPTOPS = b"""# Equipment

Every engineer receives a laptop on the first day. The budget can be split across a
laptop and a monitor. Broken equipment is replaced by the IT desk within two days.
"""
QUESTION = "How much paid parental leave do parents get?"


async def _indexed(client: httpx.AsyncClient, user: User, name: str, content: bytes) -> str:
    doc_id = await upload(client, user, name, content)
    doc = await wait_for_status(client, user, doc_id)
    assert doc["status"] == "indexed", doc
    return doc_id


async def _search(client: httpx.AsyncClient, user: User, **body: Any) -> list[dict[str, Any]]:
    response = await client.post("/api/search", headers=user.headers, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["query"] == body["query"]
    passages: list[dict[str, Any]] = response.json()["passages"]
    return passages


async def test_search_ranks_passages_with_every_stages_score(client: httpx.AsyncClient) -> None:
    user = await new_user(client)
    leave = await _indexed(client, user, "leave.md", LEAVE)
    errors = await _indexed(client, user, "errors.md", ERRORS)
    await _indexed(client, user, "equipment.md", LAPTOPS)

    hybrid = await _search(client, user, query=QUESTION, retrieval="hybrid", reranking="none")
    first = hybrid[0]
    assert first["document_id"] == leave and first["filename"] == "leave.md"
    assert first["rank"] == 1 and [p["rank"] for p in hybrid] == list(range(1, len(hybrid) + 1))
    assert "Benefits > Parental leave" in (first["section"] or ""), first
    assert "sixteen weeks" in first["text"]
    scores = first["scores"]
    # Found by both searches: its cosine similarity, its BM25 score, and the
    # fused score that ranked it (its final score).
    assert 0 < scores["dense"] <= 1 and scores["bm25"] > 0
    assert first["score"] == scores["fused"] > 0
    assert scores["reranker"] is None
    assert [p["score"] for p in hybrid] == sorted((p["score"] for p in hybrid), reverse=True)

    lexical = await _search(client, user, query="ZX-4417", retrieval="lexical", reranking="none")
    assert [p["document_id"] for p in lexical] == [errors]
    assert lexical[0]["scores"]["bm25"] == lexical[0]["score"] > 0
    assert lexical[0]["scores"]["dense"] is None and lexical[0]["scores"]["fused"] is None

    dense = await _search(client, user, query=QUESTION, retrieval="dense", top_k=2)
    assert len(dense) == 2 and dense[0]["document_id"] == leave
    assert dense[0]["scores"]["bm25"] is None and dense[0]["scores"]["dense"] > 0

    reranked = await _search(client, user, query=QUESTION, reranking="cross-encoder")
    assert reranked[0]["document_id"] == leave
    assert reranked[0]["scores"]["reranker"] is not None

    # document_ids narrows, as in chat.
    only = await _search(client, user, query=QUESTION, document_ids=[errors])
    assert {p["document_id"] for p in only} == {errors}


async def test_search_agrees_with_the_chats_sources(client: httpx.AsyncClient) -> None:
    """Same options, same passages: a search shows what a chat is given."""
    user = await new_user(client)
    await _indexed(client, user, "leave.md", LEAVE)
    await _indexed(client, user, "equipment.md", LAPTOPS)
    options = {"retrieval": "hybrid", "reranking": "cross-encoder", "top_k": 3}
    passages = await _search(client, user, query=QUESTION, **options)
    chat = await client.post(
        "/api/chat", headers=user.headers, json={"message": QUESTION, **options}
    )
    assert chat.status_code == 200, chat.text
    sources = chat.json()["sources"]
    assert [(p["document_id"], p["chunk_index"]) for p in passages] == [
        (s["document_id"], s["chunk_index"]) for s in sources
    ]
    assert [p["score"] for p in passages] == [s["score"] for s in sources]


async def test_search_refuses_what_it_cannot_do(client: httpx.AsyncClient) -> None:
    user = await new_user(client)
    for body, status in (
        ({"query": "x", "hyde": True}, 400),  # no generative model on this stack
        ({"query": "x", "reranking": "llm"}, 400),
        ({"query": "   "}, 422),
        ({"query": "x", "top_k": 0}, 422),
        ({"query": "x", "message": "x"}, 422),
        ({"query": "x", "timeout": 0}, 422),
    ):
        response = await client.post("/api/search", headers=user.headers, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["detail"]
    assert (await client.post("/api/search", json={"query": "x"})).status_code == 401


async def test_a_user_without_documents_finds_nothing(client: httpx.AsyncClient) -> None:
    user = await new_user(client)
    assert await _search(client, user, query=QUESTION) == []
