"""Tags and metadata on documents (issue 22): given at upload, shown on the
document, changed by PATCH with the chunks following in both indexes, and
filtering search, chat and /v1 inside the stores' own queries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support.api import User, new_user, wait_for_status

FINANCE = b"# Expenses\n\nExpense claims must be filed within 30 days, with the receipts.\n"
TRAVEL = b"# Travel\n\nExpense claims for trips abroad need the manager's approval first.\n"
HANDBOOK = (
    b"<html><body><h1>Handbook</h1><p>Expense claims go through the portal.</p></body></html>"
)
QUESTION = "How are expense claims filed?"
MODES = ("dense", "lexical", "hybrid")


async def _upload(
    client: httpx.AsyncClient,
    user: User,
    name: str,
    content: bytes,
    kind: str,
    form: dict[str, list[str]],
) -> dict[str, Any]:
    response = await client.post(
        "/api/documents",
        headers=user.headers,
        files=[("file", (name, content, kind))],
        data=form,  # a list: the field repeated
    )
    assert response.status_code == 202, response.text
    doc: dict[str, Any] = response.json()
    assert (await wait_for_status(client, user, doc["id"]))["status"] == "indexed"
    return doc


async def _found(
    client: httpx.AsyncClient, user: User, filters: dict[str, Any], mode: str = "hybrid"
) -> set[str]:
    """The file names a filtered search finds (the filter on /api/search)."""
    body = {"query": QUESTION, "retrieval": mode, "reranking": "none", "filters": filters}
    response = await client.post("/api/search", headers=user.headers, json=body)
    assert response.status_code == 200, response.text
    return {p["filename"] for p in response.json()["passages"]}


async def test_labels_at_upload_filter_search_in_every_mode(client: httpx.AsyncClient) -> None:
    user = await new_user(client, "labels")
    finance = await _upload(
        client,
        user,
        "finance.md",
        FINANCE,
        "text/markdown",
        {"tags": ["finance", "policy, 2026"], "meta": ["team=accounts", '{"region": "eu"}']},
    )  # fmt: skip
    assert finance["tags"] == ["finance", "policy", "2026"]
    assert finance["meta"] == {"team": "accounts", "region": "eu"}
    listed = await client.get(f"/api/documents/{finance['id']}", headers=user.headers)
    assert listed.json()["tags"] == finance["tags"] and listed.json()["meta"] == finance["meta"]
    await _upload(
        client, user, "travel.md", TRAVEL, "text/markdown",
        {"tags": ['["travel", "policy"]'], "meta": ["team=travel"]},
    )  # fmt: skip
    await _upload(client, user, "handbook.html", HANDBOOK, "text/html", {})
    everything = {"finance.md", "travel.md", "handbook.html"}
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

    for mode in MODES:
        assert await _found(client, user, {}, mode) == everything, mode
        cases: list[tuple[dict[str, Any], set[str]]] = [
            ({"tags_any": ["finance", "travel"]}, {"finance.md", "travel.md"}),
            ({"tags_any": ["travel"]}, {"travel.md"}),
            ({"tags_all": ["policy", "finance"]}, {"finance.md"}),
            ({"tags_all": ["travel", "finance"]}, set()),
            ({"meta": {"team": "accounts"}}, {"finance.md"}),
            ({"meta": {"team": "accounts", "region": "us"}}, set()),
            ({"filename": "travel.md"}, {"travel.md"}),
            ({"content_type": "text/html"}, {"handbook.html"}),
            ({"uploaded_after": earlier}, everything),
            ({"uploaded_after": later}, set()),
            ({"uploaded_before": earlier}, set()),
            ({"tags_any": ["policy"], "meta": {"team": "travel"}}, {"travel.md"}),
        ]
        for filters, expected in cases:
            assert await _found(client, user, filters, mode) == expected, (mode, filters)


async def test_bad_labels_are_refused_with_the_reason(client: httpx.AsyncClient) -> None:
    user = await new_user(client, "badlabels")
    for form, says in (
        ({"tags": ["has space"]}, "tags"),
        ({"tags": ["x" * 65]}, "tags"),
        ({"tags": [",".join(f"t{n}" for n in range(21))]}, "tags"),
        ({"meta": ["novalue"]}, "key=value"),
        ({"meta": ["1bad=v"]}, "meta"),
        ({"meta": ["k=" + "v" * 257]}, "meta"),
        ({"meta": ['{"n": 1}']}, "strings"),
    ):
        response = await client.post(
            "/api/documents",
            headers=user.headers,
            files=[("file", ("a.txt", b"some text", "text/plain"))],
            data=form,
        )
        assert response.status_code == 400, (form, response.text)
        assert says in response.json()["detail"], (form, response.text)
    listed = await client.get("/api/documents", headers=user.headers)
    assert listed.json() == []  # nothing was stored
    # An unknown or malformed filter is refused, never ignored (ignoring it
    # would search wider than asked).
    for filters in ({"tag": ["a"]}, {"tags_any": []}, {"uploaded_after": "yesterday"}):
        body = {"query": "x", "filters": filters}
        response = await client.post("/api/search", headers=user.headers, json=body)
        assert response.status_code == 422, (filters, response.text)


async def test_patched_labels_move_the_chunks_in_both_indexes(client: httpx.AsyncClient) -> None:
    user = await new_user(client, "patch")
    doc = await _upload(client, user, "finance.md", FINANCE, "text/markdown", {"tags": ["old"]})
    url = f"/api/documents/{doc['id']}"
    patched = await client.patch(
        url, headers=user.headers, json={"tags": ["new", "q3"], "meta": {"owner": "ana"}}
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["tags"], patched.json()["meta"]) == (["new", "q3"], {"owner": "ana"})
    assert patched.json()["visibility"] == "private"  # not asked to change
    for mode in ("dense", "lexical"):  # each index on its own
        assert await _found(client, user, {"tags_any": ["old"]}, mode) == set(), mode
        assert await _found(client, user, {"tags_all": ["new", "q3"]}, mode) == {"finance.md"}
        assert await _found(client, user, {"meta": {"owner": "ana"}}, mode) == {"finance.md"}
    # Metadata alone: the tags stay.
    again = await client.patch(url, headers=user.headers, json={"meta": {}})
    assert again.status_code == 200 and again.json()["tags"] == ["new", "q3"]
    for mode in ("dense", "lexical"):
        assert await _found(client, user, {"meta": {"owner": "ana"}}, mode) == set(), mode
    for body in ({"tags": ["bad tag"]}, {"meta": {"k": 1}}, {"meta": {"1k": "v"}}, {"x": 1}):
        refused = await client.patch(url, headers=user.headers, json=body)
        assert refused.status_code == 422, (body, refused.text)
    # Nothing to change changes nothing.
    same = await client.patch(url, headers=user.headers, json={"tags": None})
    assert same.status_code == 200 and same.json()["tags"] == ["new", "q3"]
    # The audit log names the change.
    audit = await client.get(
        "/api/admin/audit", headers=user.headers, params={"action": "document.labelled"}
    )
    assert audit.status_code == 200, audit.text
    assert [e["detail"] for e in audit.json()] == [
        {"meta": {}},
        {"tags": ["new", "q3"], "meta": {"owner": "ana"}},
    ]


async def test_chat_and_the_openai_api_take_the_filters(client: httpx.AsyncClient) -> None:
    user = await new_user(client, "chatfilters")
    await _upload(client, user, "finance.md", FINANCE, "text/markdown", {"tags": ["finance"]})
    await _upload(client, user, "travel.md", TRAVEL, "text/markdown", {"tags": ["travel"]})
    body = {"message": QUESTION, "filters": {"tags_any": ["travel"]}}
    whole = await client.post("/api/chat", headers=user.headers, json=body)
    assert whole.status_code == 200, whole.text
    assert {s["filename"] for s in whole.json()["sources"]} == {"travel.md"}

    async with client.stream(
        "POST", "/api/chat/stream", headers=user.headers, json=body
    ) as streamed:
        text = (await streamed.aread()).decode()
    assert '"filename": "travel.md"' in text and "finance.md" not in text

    completion = await client.post(
        "/v1/chat/completions",
        headers=user.headers,
        json={
            "model": "ragstream",
            "messages": [{"role": "user", "content": QUESTION}],
            "filters": {"tags_any": ["finance"]},
        },
    )
    assert completion.status_code == 200, completion.text
    assert {s["filename"] for s in completion.json()["sources"]} == {"finance.md"}
    refused = await client.post(
        "/v1/chat/completions",
        headers=user.headers,
        json={
            "model": "ragstream",
            "messages": [{"role": "user", "content": QUESTION}],
            "filters": {"tags": ["x"]},
        },
    )
    assert refused.status_code == 400, refused.text


async def test_a_document_uploaded_while_labels_change_ends_with_the_last_labels(
    client: httpx.AsyncClient,
) -> None:
    """A PATCH racing the indexing: the worker settles the chunks on the
    row's labels after its last write, the PATCH after its row update."""
    user = await new_user(client, "race")
    response = await client.post(
        "/api/documents",
        headers=user.headers,
        files=[("file", ("finance.md", FINANCE * 40, "text/markdown"))],
        data={"tags": "first"},
    )
    assert response.status_code == 202, response.text
    doc_id = response.json()["id"]
    for n in range(5):
        patched = await client.patch(
            f"/api/documents/{doc_id}", headers=user.headers, json={"tags": [f"t{n}"]}
        )
        assert patched.status_code == 200, patched.text
        await asyncio.sleep(0.05)
    assert (await wait_for_status(client, user, doc_id))["status"] == "indexed"
    for mode in ("dense", "lexical"):
        assert await _found(client, user, {"tags_any": ["t4"]}, mode) == {"finance.md"}, mode
        stale = {"tags_any": ["first", "t0", "t1", "t2", "t3"]}
        assert await _found(client, user, stale, mode) == set(), mode
