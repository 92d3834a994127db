"""``schemas/``: JSON Schema of every event and an AsyncAPI document, generated
from the event models (``rag schemas``) and checked for drift by the tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shared.events import (
    REPLY_ADAPTER,
    ChatCancel,
    ChatRequest,
    DeadLetter,
    IngestRequest,
    IngestStatus,
)
from shared.topics import Topics

_TOPICS = Topics.from_prefix("rag")
# channel id -> (address, message name, description)
_CHANNELS: dict[str, tuple[str, str, str]] = {
    "ingestRequests": (
        _TOPICS.ingest_requests,
        "IngestRequest",
        "Documents to index; keyed by document id. A claim check: bytes stay in the blob store.",
    ),
    "ingestEvents": (
        _TOPICS.ingest_events,
        "IngestStatus",
        "Document status changes; keyed by document id.",
    ),
    "chatRequests": (
        _TOPICS.chat_requests,
        "ChatRequest",
        "Questions to answer; keyed by conversation id.",
    ),
    "chatReplies": (
        _TOPICS.chat_replies,
        "ChatReply",
        "token, sources, done and error events, sent to the partition named in reply_to.",
    ),
    "chatCancel": (
        _TOPICS.chat_cancel,
        "ChatCancel",
        "Stop generating: the client left or timed out.",
    ),
    "deadLetters": (
        "{topic}.dlq",
        "DeadLetter",
        "Messages a consumer could not handle, with the reason.",
    ),
}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(mode="serialization")


def _event_schemas() -> dict[str, dict[str, Any]]:
    return {
        "IngestRequest": _schema(IngestRequest),
        "IngestStatus": _schema(IngestStatus),
        "ChatRequest": _schema(ChatRequest),
        "ChatReply": REPLY_ADAPTER.json_schema(mode="serialization"),
        "ChatCancel": _schema(ChatCancel),
        "DeadLetter": _schema(DeadLetter),
    }


def _asyncapi() -> dict[str, Any]:
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ragstream events",
            "version": "1",
            "description": "Topic names use the default KAFKA_TOPIC_PREFIX, 'rag'.",
        },
        "defaultContentType": "application/json",
        "channels": {
            channel: {
                "address": address,
                "description": description,
                "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            }
            for channel, (address, name, description) in _CHANNELS.items()
        },
        "components": {
            "messages": {
                name: {"name": name, "payload": {"$ref": f"./{name}.schema.json"}}
                for _, name, _ in _CHANNELS.values()
            }
        },
    }


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def render() -> dict[str, str]:
    """File name -> content, for everything under ``schemas/``."""
    files = {f"{name}.schema.json": _dump(s) for name, s in _event_schemas().items()}
    files["asyncapi.json"] = _dump(_asyncapi())
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
