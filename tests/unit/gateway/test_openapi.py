"""/openapi.json as the app builds it (no services needed to read it): every
error status with the body gateway.http.errors sends, the constraints the
models enforce, and links that name real operations and parameters. The
live gateway is held to the document by tests/adversarial/test_schemathesis.py."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import cache
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError

from gateway.app import create_app
from gateway.doc_events import StatusEvent
from gateway.http.errors import STATUS, status_of
from gateway.http.openapi import errors
from gateway.models import SPACE, ChatBody, DocumentStatusEvent, KeyName, Username
from gateway.openai_models import ErrorBody, UserText
from shared.config import Settings
from shared.contracts.schemas import asyncapi
from shared.errors import InvalidInput, NotFound, UnsupportedDocument
from shared.storage.documents import Document

ERROR_OUT = "#/components/schemas/ErrorOut"
OPENAI_ERROR = "#/components/schemas/ErrorBody"
VALIDATION = "#/components/schemas/HTTPValidationError"
METHODS = ("get", "post", "put", "patch", "delete")


@cache
def document() -> dict[str, Any]:
    spec: dict[str, Any] = create_app(Settings(secret_key="x" * 64)).openapi()
    return spec


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, ops in document()["paths"].items()
        for method, op in ops.items()
        if method in METHODS
    ]


def _body_ref(response: dict[str, Any]) -> str | None:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    ref: str | None = schema.get("$ref")
    return ref


@pytest.mark.parametrize(("method", "path", "op"), operations(), ids=lambda v: str(v)[:40])
def test_every_error_status_comes_with_the_body_the_gateway_sends(
    method: str, path: str, op: dict[str, Any]
) -> None:
    responses = op["responses"]
    if op.get("security"):
        # A credential may be missing, refused, over a limit, or unverifiable.
        assert {"401", "429", "503"} <= set(responses), (method, path)
    for status, response in responses.items():
        if int(status) < 400:
            continue
        if status == "422":
            assert _body_ref(response) == VALIDATION, (method, path)
        elif path.startswith("/v1/") and status != "413":
            assert _body_ref(response) == OPENAI_ERROR, (method, path, status)
        elif path != "/health/ready":
            assert _body_ref(response) == ERROR_OUT, (method, path, status)
        assert response["description"], (method, path, status)
    if path.startswith("/v1/"):
        # OpenAI's routes answer a body they cannot read with 400, never 422.
        assert "422" not in responses


def test_a_body_read_by_a_dependency_is_documented_with_its_refusals() -> None:
    chat = document()["paths"]["/api/chat"]["post"]
    schema = chat["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ChatBody"}
    expected = ChatBody.model_json_schema(ref_template="#/components/schemas/{model}")
    nested = expected.pop("$defs", {})  # components of their own (Filters)
    components = document()["components"]["schemas"]
    assert components["ChatBody"] == expected
    assert all(components[name] == schema for name, schema in nested.items())
    assert {"400", "413", "422", "504"} <= set(chat["responses"])


def test_statuses_come_from_the_error_map() -> None:
    assert set(errors(UnsupportedDocument, InvalidInput, NotFound)) == {415, 400, 404}
    for kind, status in STATUS:
        assert status_of(kind) == status
    merged = errors((NotFound, "No such thing"), (NotFound, "Not yours"), body=ErrorBody)
    assert merged[404]["description"] == "No such thing. Not yours"
    assert merged[404]["model"] is ErrorBody


def test_links_name_operations_and_their_parameters() -> None:
    by_id = {op["operationId"]: op for _, _, op in operations()}
    found = set()
    for _, _, op in operations():
        for response in op["responses"].values():
            for name, link in response.get("links", {}).items():
                target = by_id[link["operationId"]]
                names = {p["name"] for p in target.get("parameters", [])}
                assert set(link["parameters"]) <= names, name
                found.add((op["operationId"], link["operationId"]))
    assert {
        ("upload", "get_document"),
        ("upload", "set_visibility"),
        ("upload", "delete_document"),
        ("chat", "history"),
        ("chat_stream", "history"),
        ("create_key", "revoke_key"),
    } <= found


@pytest.mark.parametrize(
    ("path", "method", "events"),
    [
        ("/api/documents/events", "get", {"status", "ended"}),
        ("/api/chat/stream", "post", {"sources", "token", "done", "error", "timeout", "reset"}),
        ("/v1/chat/completions", "post", set()),  # OpenAI's events have no name
    ],
)
def test_event_streams_are_described_with_their_events(
    path: str, method: str, events: set[str]
) -> None:
    success = document()["paths"][path][method]["responses"]["200"]
    item = success["content"]["text/event-stream"]["itemSchema"]
    named = {e["properties"]["event"]["const"] for e in item.get("oneOf", [])}
    assert named == events
    schemas = document()["components"]["schemas"]
    for event in item.get("oneOf", []):
        data = event["properties"]["data"]["contentSchema"]
        ref = data.get("$ref") or data["items"]["$ref"]
        assert ref.rsplit("/", 1)[-1] in schemas, ref


def test_the_trimmed_characters_are_those_str_strip_removes() -> None:
    space = re.compile(f"[{SPACE}]")
    assert [c for c in map(chr, range(0x3001)) if bool(space.fullmatch(c)) != c.isspace()] == []


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("what is it?", True),
        ("  padded\n", True),
        ("\u3000", False),
        (" \t\n", False),
        ("a\x00b", False),
        ("x" * 8000, True),
        ("x" * 7999 + " ", True),
        ("x" * 8000 + " ", False),
    ],
)
def test_the_message_schema_says_what_the_model_accepts(value: str, valid: bool) -> None:
    schema = ChatBody.model_json_schema()["properties"]["message"]
    by_schema = (
        schema["minLength"] <= len(value) <= schema["maxLength"]
        and re.search(schema["pattern"], value) is not None
    )
    try:
        ChatBody(message=value)
        by_model = True
    except ValidationError:
        by_model = False
    assert by_schema == by_model == valid


@pytest.mark.parametrize(
    ("adapter", "value", "kept"),
    [
        (Username, " alice\u2003", "alice"),
        (Username, "al", None),
        (KeyName, "\tci key ", "ci key"),
        (KeyName, "ci\tkey", None),
        (KeyName, " \x85", None),
    ],
)
def test_trimmed_fields_are_refused_by_schema_and_model_alike(
    adapter: Any, value: str, kept: str | None
) -> None:
    types: TypeAdapter[str] = TypeAdapter(adapter)
    pattern = types.json_schema()["pattern"]
    assert (re.search(pattern, value) is not None) == (kept is not None)
    if kept is None:
        with pytest.raises(ValidationError):
            types.validate_python(value)
    else:
        assert types.validate_python(value) == kept


def test_document_events_carry_the_documented_payload() -> None:
    doc = Document(
        id=uuid4(),
        tenant_id=uuid4(),
        user_id=uuid4(),
        filename="a.md",
        content_type="text/markdown",
        size_bytes=3,
        sha256="",
        blob_key="k",
        status="failed",
        chunks=0,
        error="unreadable",
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
    )
    payload = StatusEvent.of_row(doc).payload()
    assert set(payload) == set(DocumentStatusEvent.model_fields)
    assert DocumentStatusEvent.model_validate(payload).error == "unreadable"


def test_the_event_schemas_are_the_asyncapi_documents_own() -> None:
    """The models both documents describe (a chat's sources) are one schema."""
    kafka = asyncapi()["components"]["schemas"]
    http = document()["components"]["schemas"]
    shared = set(kafka) & set(http)
    assert "Source" in shared
    for name in shared:
        assert set(kafka[name]["properties"]) == set(http[name]["properties"]), name
        assert kafka[name].get("required") == http[name].get("required"), name
    stream = document()["paths"]["/api/chat/stream"]["post"]["responses"]["200"]
    events = stream["content"]["text/event-stream"]["itemSchema"]["oneOf"]
    sources = next(e for e in events if e["properties"]["event"]["const"] == "sources")
    assert sources["properties"]["data"]["contentSchema"]["items"] == {
        "$ref": "#/components/schemas/Source"
    }


@pytest.mark.parametrize("value", ["plain", "a\x00b", "\x00", ""])
def test_openai_text_schema_says_what_is_refused(value: str) -> None:
    """NUL is refused with a reason that names it, and the schema says so."""
    text: TypeAdapter[Any] = TypeAdapter(UserText)
    allowed = re.search(text.json_schema()["pattern"], value) is not None
    assert allowed == ("\x00" not in value)
    if allowed:
        assert text.validate_python(value) == value
    else:
        with pytest.raises(ValidationError, match="NUL"):
            text.validate_python(value)


def test_a_405_names_every_method_of_the_path() -> None:
    client = TestClient(create_app(Settings(secret_key="x" * 64)))
    for path, methods in (
        ("/api/keys", "GET, POST"),
        (f"/api/documents/{uuid4()}", "DELETE, GET, PATCH"),
        ("/api/admin/users", "GET, POST"),
    ):
        refused = client.request("PUT", path)
        assert refused.status_code == 405
        assert refused.headers["allow"] == methods
        assert refused.json() == {"detail": "Method Not Allowed"}


@pytest.mark.parametrize(("top_k", "kept"), [(39, 39), (39.0, 39), ("39", None), (True, None)])
def test_a_body_takes_each_value_in_its_json_type_only(top_k: Any, kept: int | None) -> None:
    """``39.0`` is an integer to JSON Schema; ``"39"`` and ``true`` are not."""
    body = json.dumps({"message": "hi", "top_k": top_k})
    if kept is None:
        with pytest.raises(ValidationError):
            ChatBody.model_validate_json(body)
    else:
        assert ChatBody.model_validate_json(body).top_k == kept
    with pytest.raises(ValidationError):
        ChatBody.model_validate_json('{"message": "hi", "compression": 0}')
