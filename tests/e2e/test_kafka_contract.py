"""Internal services publishing straight to Kafka: bad messages are
dead-lettered with a reason, expired chats cost nothing, and replays of an
ingest request do not duplicate chunks."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from shared.contracts.events import ChatRequest, ReplyTo
from tests.support.api import new_user, upload, wait_for_status
from tests.support.kafka import (
    document_row,
    ingest_request_for,
    lexical_chunk_count,
    produce,
    publish_ingest,
    read_until,
)
from tests.support.processes import Component


def _topic(app_env: dict[str, str], name: str) -> str:
    return f"{app_env['KAFKA_TOPIC_PREFIX']}.{name}"


async def test_invalid_messages_are_dead_lettered_and_workers_keep_going(
    app_env: dict[str, str], client: httpx.AsyncClient
) -> None:
    bootstrap = app_env["KAFKA_BOOTSTRAP_SERVERS"]
    marker = uuid.uuid4().hex
    for topic in ("ingest.requests", "chat.requests"):
        await produce(bootstrap, _topic(app_env, topic), f'{{"oops": "{marker}"}}'.encode())
        letters = await read_until(
            bootstrap,
            _topic(app_env, f"{topic}.dlq"),
            lambda msgs: any(marker in m["payload"] for m in msgs),
        )
        [letter] = [m for m in letters if marker in m["payload"]]
        assert letter["reason"] == "invalid_message"
        assert "correlation_id" in letter["detail"]
        assert letter["source_topic"] == _topic(app_env, topic)

    user = await new_user(client)
    doc = await upload(client, user, "after.txt", b"Workers survive bad messages.")
    assert (await wait_for_status(client, user, doc))["status"] == "indexed"


async def test_expired_chat_requests_are_dropped_and_default_replies_work(
    app_env: dict[str, str], client: httpx.AsyncClient, workers: list[Component]
) -> None:
    user = await new_user(client)
    bootstrap = app_env["KAFKA_BOOTSTRAP_SERVERS"]
    now = datetime.now(UTC)
    conversation = uuid.uuid4()
    common = {
        "tenant_id": uuid.UUID(user.id),
        "user_id": uuid.UUID(user.id),
        "conversation_id": conversation,
        "message": "anything at all",
    }
    expired = ChatRequest(
        correlation_id=f"expired-{uuid.uuid4().hex}",
        deadline=now - timedelta(seconds=1),
        reply_to=ReplyTo(topic=_topic(app_env, "chat.replies"), partition=0),
        **common,
    )
    # No reply_to: the answer goes to the reply topic, keyed by correlation id.
    fresh = ChatRequest(
        correlation_id=f"fresh-{uuid.uuid4().hex}", deadline=now + timedelta(seconds=30), **common
    )
    for event in (expired, fresh):
        await produce(
            bootstrap,
            _topic(app_env, "chat.requests"),
            event.model_dump_json().encode(),
            key=str(conversation).encode(),
        )

    def fresh_done(msgs: list[dict[str, object]]) -> bool:
        return any(
            m["correlation_id"] == fresh.correlation_id and m["type"] == "done" for m in msgs
        )

    replies = await read_until(bootstrap, _topic(app_env, "chat.replies"), fresh_done)
    assert not [m for m in replies if m["correlation_id"] == expired.correlation_id]
    mine = [m for m in replies if m["correlation_id"] == fresh.correlation_id]
    assert [m["type"] for m in mine][0] == "sources"
    query_log = workers[1].log()
    assert any(
        "Chat request expired" in line and expired.correlation_id in line
        for line in query_log.splitlines()
    )


async def test_a_chat_request_replying_elsewhere_is_dead_lettered_unanswered(
    app_env: dict[str, str], client: httpx.AsyncClient, workers: list[Component]
) -> None:
    # Anyone who can publish to the request topic names the reply topic: one
    # outside this deployment (another prefix's, or a topic of its own) is
    # refused, so no answer, not even an error event, is written there.
    user = await new_user(client)
    bootstrap = app_env["KAFKA_BOOTSTRAP_SERVERS"]
    request = ChatRequest(
        correlation_id=f"elsewhere-{uuid.uuid4().hex}",
        tenant_id=uuid.UUID(user.tenant_id),
        user_id=uuid.UUID(user.id),
        conversation_id=uuid.uuid4(),
        message="Where are the minutes kept?",
        deadline=datetime.now(UTC) + timedelta(seconds=30),
        reply_to=ReplyTo(topic="another-deployment.chat.replies", partition=0),
    )
    await produce(bootstrap, _topic(app_env, "chat.requests"), request.model_dump_json().encode())
    letters = await read_until(
        bootstrap,
        _topic(app_env, "chat.requests.dlq"),
        lambda msgs: any(m["correlation_id"] == request.correlation_id for m in msgs),
    )
    [letter] = [m for m in letters if m["correlation_id"] == request.correlation_id]
    assert letter["reason"] == "invalid_input"
    assert "is not this deployment's reply topic" in letter["detail"]
    query_log = workers[1].log()
    assert not [
        line
        for line in query_log.splitlines()
        if request.correlation_id in line and "Chat answered" in line
    ]


async def test_replayed_ingest_request_does_not_duplicate_chunks(
    app_env: dict[str, str], client: httpx.AsyncClient
) -> None:
    user = await new_user(client)
    text = "\n\n".join(f"Section {i}. " + "policy words " * 80 for i in range(6))
    doc_id = await upload(client, user, "long.txt", text.encode())
    first = await wait_for_status(client, user, doc_id)
    assert first["status"] == "indexed" and first["chunks"] > 1

    row = await document_row(app_env["DATABASE_URL"], doc_id)
    replay = ingest_request_for(row, "replay")
    for _ in range(2):
        await publish_ingest(app_env, replay)
    events = await read_until(
        app_env["KAFKA_BOOTSTRAP_SERVERS"],
        _topic(app_env, "ingest.events"),
        lambda msgs: (
            sum(
                m["correlation_id"] == replay.correlation_id and m["status"] == "indexed"
                for m in msgs
            )
            == 2
        ),
    )
    indexed = [m for m in events if m["correlation_id"] == replay.correlation_id]
    assert {m["chunks"] for m in indexed if m["status"] == "indexed"} == {first["chunks"]}

    async with httpx.AsyncClient(base_url=app_env["CHROMA_URL"]) as chroma:
        count = await _chroma_count(chroma, doc_id)
    assert count == first["chunks"]
    lexical = await lexical_chunk_count(app_env["DATABASE_URL"], doc_id)
    assert lexical == first["chunks"]


async def _chroma_count(chroma: httpx.AsyncClient, doc_id: str) -> int:
    base = "/api/v2/tenants/default_tenant/databases/default_database/collections"
    collections = (await chroma.get(base)).json()
    found = 0
    # One collection per tenant of the default model's.
    for c in collections:
        if c["name"].startswith("chunks-bge-small-en-v1.5-384-"):
            result = await chroma.post(
                f"{base}/{c['id']}/get", json={"where": {"document_id": doc_id}, "include": []}
            )
            assert result.status_code == 200, result.text
            found += len(json.loads(result.text)["ids"])
    return found
