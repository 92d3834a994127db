"""``schemas/``: JSON Schema of every event and an AsyncAPI document, generated
from the event models (``rag schemas``) and checked for drift by the tests.

The AsyncAPI document is FastStream's: a broker that is never started
declares each topic with its model (a subscriber for what the workers
receive, a publisher for what they send) and FastStream describes it, the
same way it describes the workers' own brokers. The gateway serves the same
document at ``GET /asyncapi``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel

from shared.contracts.events import (
    REPLY_ADAPTER,
    AnyReply,
    ChatCancel,
    ChatRequest,
    DeadLetter,
    FeedbackGiven,
    IngestRequest,
    IngestStatus,
    SearchRequest,
)
from shared.contracts.topics import Topics

_TOPICS = Topics.from_prefix("rag")
# The server the document names: a placeholder for KAFKA_BOOTSTRAP_SERVERS.
_SERVER = "localhost:9092"


@dataclass(frozen=True)
class _Channel:
    title: str
    address: str
    payload: Any  # a model, or an annotated union of models
    description: str


# What ragstream's workers receive ...
_RECEIVED = (
    _Channel(
        "ingestRequests",
        _TOPICS.ingest_requests,
        IngestRequest,
        "Documents to index; keyed by document id. A claim check: the bytes stay in the"
        " blob store and a documents row must exist (see docs/integration.md).",
    ),
    _Channel(
        "chatRequests",
        _TOPICS.chat_requests,
        ChatRequest,
        "Questions to answer; keyed by conversation id. Replies go to reply_to.",
    ),
    _Channel(
        "searchRequests",
        _TOPICS.search_requests,
        SearchRequest,
        "Queries to rank passages for, without an answer (POST /api/search); keyed by stream"
        " id. One search.reply goes to reply_to.",
    ),
    _Channel(
        "chatCancel",
        _TOPICS.chat_cancel,
        ChatCancel,
        "Stop generating: the client left or timed out.",
    ),
)
# ... and what they send.
_SENT = (
    _Channel(
        "ingestEvents",
        _TOPICS.ingest_events,
        IngestStatus,
        "Document status changes (queued, processing, indexed, failed); keyed by document id.",
    ),
    _Channel(
        "chatReplies",
        _TOPICS.chat_replies,
        AnyReply,
        "token, sources, done and error events, and the search.reply of a search request,"
        " sent to the partition named in reply_to (keyed by stream id when there is none).",
    ),
    _Channel(
        "feedback",
        _TOPICS.feedback,
        FeedbackGiven,
        "Ratings of answers (up or down, a comment, the source said to be wrong), sent by"
        " the gateway as users give them; keyed by conversation id. A later rating of the"
        " same turn replaces the earlier one.",
    ),
    _Channel(
        "ingestDeadLetters",
        Topics.dead_letter(_TOPICS.ingest_requests),
        DeadLetter,
        "Ingest requests the worker could not handle, with the reason.",
    ),
    _Channel(
        "chatDeadLetters",
        Topics.dead_letter(_TOPICS.chat_requests),
        DeadLetter,
        "Chat requests the worker could not handle, with the reason.",
    ),
    _Channel(
        "searchDeadLetters",
        Topics.dead_letter(_TOPICS.search_requests),
        DeadLetter,
        "Search requests the worker could not handle, with the reason.",
    ),
)


def _receiver(payload: Any) -> Callable[..., Awaitable[None]]:
    """A handler that is never run: FastStream reads a subscriber's message
    schema from its handler's signature."""

    async def handle(message: Any) -> None:  # pragma: no cover - never called
        del message

    handle.__annotations__ = {"message": payload, "return": None}
    return handle


def spec_broker() -> KafkaBroker:
    """A broker declaring every topic with its model; never started (it
    connects to nothing), it only describes."""
    broker = KafkaBroker(
        _SERVER,
        description="Set KAFKA_BOOTSTRAP_SERVERS; topic names use the default"
        " KAFKA_TOPIC_PREFIX, 'rag'.",
    )
    for channel in _RECEIVED:
        broker.subscriber(channel.address, title=channel.title, description=channel.description)(
            _receiver(channel.payload)
        )
    for channel in _SENT:
        broker.publisher(
            channel.address,
            title=channel.title,
            schema=channel.payload,
            description=channel.description,
        )
    return broker


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document, as FastStream builds it from ``spec_broker``."""
    spec = AsyncAPI(
        spec_broker(),
        title="ragstream events",
        version="1",
        description="The Kafka topics of ragstream, from the point of view of its workers:"
        " internal services send what the workers receive. See docs/integration.md.",
        schema_version="3.0.0",
    ).to_specification()
    document: dict[str, Any] = spec.to_jsonable()
    return document


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(mode="serialization")


def _event_schemas() -> dict[str, dict[str, Any]]:
    return {
        "IngestRequest": _schema(IngestRequest),
        "IngestStatus": _schema(IngestStatus),
        "ChatRequest": _schema(ChatRequest),
        "ChatReply": REPLY_ADAPTER.json_schema(mode="serialization"),
        "ChatCancel": _schema(ChatCancel),
        "SearchRequest": _schema(SearchRequest),
        "DeadLetter": _schema(DeadLetter),
        "FeedbackGiven": _schema(FeedbackGiven),
    }


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def render() -> dict[str, str]:
    """File name -> content, for everything under ``schemas/``."""
    files = {f"{name}.schema.json": _dump(s) for name, s in _event_schemas().items()}
    files["asyncapi.json"] = _dump(asyncapi())
    return files


def write_schemas(directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    files = render()
    for name, content in files.items():
        (directory / name).write_text(content)
    return sorted(files)


def check_schemas(directory: Path) -> list[str]:
    """Names of files that are missing, stale, or no longer generated."""
    files = render()
    drifted = [
        name
        for name, content in files.items()
        if not (directory / name).is_file() or (directory / name).read_text() != content
    ]
    drifted += [p.name for p in directory.glob("*.json") if p.name not in files]
    return sorted(drifted)
