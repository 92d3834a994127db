import json
from pathlib import Path
from typing import Any

from shared.contracts.events import ChatCancel, DeadLetter, IngestRequest, IngestStatus
from shared.contracts.schemas import asyncapi, check_schemas, render
from shared.contracts.topics import Topics

SCHEMAS = Path(__file__).resolve().parents[4] / "schemas"


def test_checked_in_schemas_match_the_models() -> None:
    drifted = check_schemas(SCHEMAS)
    assert drifted == [], f"run `rag schemas` to regenerate: {drifted}"


def test_drift_is_detected(tmp_path: Path) -> None:
    for name, content in render().items():
        (tmp_path / name).write_text(content)
    (tmp_path / "ChatRequest.schema.json").write_text("{}\n")
    (tmp_path / "Retired.schema.json").write_text("{}\n")
    assert check_schemas(tmp_path) == ["ChatRequest.schema.json", "Retired.schema.json"]


def test_every_topic_has_a_message_in_the_asyncapi_document() -> None:
    doc = json.loads(render()["asyncapi.json"])
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    topics = Topics.from_prefix("rag")
    assert addresses == {
        topics.ingest_requests,
        topics.ingest_events,
        topics.chat_requests,
        topics.chat_replies,
        topics.chat_cancel,
        topics.feedback,
        topics.search_requests,
        Topics.dead_letter(topics.ingest_requests),
        Topics.dead_letter(topics.chat_requests),
        Topics.dead_letter(topics.search_requests),
    }


def _payload(doc: dict[str, Any], channel: str) -> dict[str, Any]:
    """The payload schema of a channel's one message, references followed."""
    [message] = doc["channels"][channel]["messages"].values()
    name = message["$ref"].rsplit("/", 1)[1]
    ref = doc["components"]["messages"][name]["payload"]["$ref"]
    schema: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def test_asyncapi_payloads_are_the_event_models() -> None:
    doc = json.loads(render()["asyncapi.json"])
    for channel, model in (
        ("ingestRequests", IngestRequest),
        ("ingestEvents", IngestStatus),
        ("chatCancel", ChatCancel),
        ("ingestDeadLetters", DeadLetter),
    ):
        schema = _payload(doc, channel)
        assert schema["title"] == model.__name__
        assert set(schema["properties"]) == set(model.model_fields), channel
        assert set(schema["required"]) == {
            name for name, field in model.model_fields.items() if field.is_required()
        }
    replies = _payload(doc, "chatReplies")
    kinds = {ref["$ref"].rsplit("/", 1)[1] for ref in replies["oneOf"]}
    assert kinds == {"TokenReply", "SourcesReply", "DoneReply", "ErrorReply", "SearchReply"}


def test_workers_receive_requests_and_send_events() -> None:
    doc = json.loads(render()["asyncapi.json"])
    actions = {name: op["action"] for name, op in doc["operations"].items()}
    assert actions == {
        "ingestRequests": "receive",
        "chatRequests": "receive",
        "chatCancel": "receive",
        "ingestEvents": "send",
        "chatReplies": "send",
        "ingestDeadLetters": "send",
        "chatDeadLetters": "send",
        "feedback": "send",
        "searchRequests": "receive",
        "searchDeadLetters": "send",
    }


def test_the_served_document_is_the_checked_in_one() -> None:
    assert json.loads((SCHEMAS / "asyncapi.json").read_text()) == asyncapi()
