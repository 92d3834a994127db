"""A client generated from the live /openapi.json (openapi-python-client, as
an API's user would generate one) signs up, uploads, lists, chats and
deletes against the real gateway and workers, with no code of its own for
errors: every answer, refusals included, is one the document names, parsed
into its model by the generated code. ``raise_on_unexpected_status`` makes
an undocumented status an exception, so each call also checks the document."""

from __future__ import annotations

import importlib
import io
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.api import PASSWORD
from tests.support.processes import Component

PACKAGE = "ragstream_api_client"
NOTE = b"The staff car park opens at 06:40 and the code for its gate is HERON-5521.\n"


@pytest.fixture(scope="module")
def generated(gateway: Component, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The generated package's folder, importable for this module's tests."""
    root = tmp_path_factory.mktemp("generated-client")
    config = root / "config.yaml"
    config.write_text(
        f"project_name_override: ragstream-api-client\npackage_name_override: {PACKAGE}\n"
    )
    bin_dir = Path(sys.executable).parent
    generator = shutil.which("openapi-python-client", path=str(bin_dir))
    assert generator, "openapi-python-client is a dev dependency (pyproject.toml)"
    command = [
        *(generator, "generate", "--url", f"{gateway.base_url}/openapi.json"),
        *("--config", str(config), "--meta", "none", "--output-path", str(root / PACKAGE)),
    ]
    # The generator formats what it writes with ruff, which it finds on PATH.
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(root))
    try:
        yield root / PACKAGE
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def _signed_in(base_url: str) -> Any:
    """A generated AuthenticatedClient for a new user, made with the
    generated register and login operations."""
    client_module, models = _module("client"), _module("models")
    register, login = _module("api.auth.register"), _module("api.auth.login")
    anonymous = client_module.Client(base_url=base_url, raise_on_unexpected_status=True)
    credentials = models.Credentials(username=f"gen-{uuid.uuid4().hex[:10]}", password=PASSWORD)
    created = register.sync_detailed(client=anonymous, body=credentials)
    assert created.status_code == 201, created.content
    tokens = login.sync(client=anonymous, body=credentials)
    assert isinstance(tokens, models.TokenOut), tokens
    return client_module.AuthenticatedClient(
        base_url=base_url, token=tokens.access_token, raise_on_unexpected_status=True, timeout=60
    )


def _indexed(client: Any, document_id: str, timeout: float = 60) -> Any:
    get_document, models = _module("api.documents.get_document"), _module("models")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = get_document.sync(client=client, document_id=document_id)
        assert isinstance(doc, models.DocumentOut), doc
        if doc.status.value in ("indexed", "failed"):
            return doc
        time.sleep(0.3)
    raise AssertionError(f"document {document_id} not indexed within {timeout} s")


def test_a_generated_client_uploads_lists_chats_and_deletes(
    generated: Path, gateway: Component
) -> None:
    models, types = _module("models"), _module("types")
    documents = "api.documents."
    upload, list_documents = _module(f"{documents}upload"), _module(f"{documents}list_documents")
    delete_document = _module(f"{documents}delete_document")
    get_document, chat = _module(f"{documents}get_document"), _module("api.chat.chat")
    client = _signed_in(gateway.base_url or "")

    note = types.File(payload=io.BytesIO(NOTE), file_name="car-park.txt", mime_type="text/plain")
    # Tags and metadata as the generated model takes them: lists of strings.
    body = models.BodyUpload(file=note, tags=["parking", "site"], meta=["building=north"])
    accepted = upload.sync(client=client, body=body)
    assert isinstance(accepted, models.DocumentOut), accepted
    assert accepted.tags == ["parking", "site"]
    assert accepted.meta.to_dict() == {"building": "north"}
    assert _indexed(client, accepted.id).status.value == "indexed"

    listed = list_documents.sync(client=client)
    assert [doc.id for doc in listed] == [accepted.id]

    answer = chat.sync(
        client=client, body=models.ChatBody(message="What is the car park gate code?")
    )
    assert isinstance(answer, models.ChatAnswer), answer
    assert "HERON-5521" in answer.answer
    assert {source.document_id for source in answer.sources} == {accepted.id}

    search = _module("api.search.search")
    filters = models.Filters(tags_any=["parking"])
    found = search.sync(client=client, body=models.SearchBody(query="gate code", filters=filters))
    assert isinstance(found, models.SearchOut), found
    assert found.passages[0].document_id == accepted.id
    assert found.passages[0].scores.dense is not None

    deleted = delete_document.sync_detailed(client=client, document_id=accepted.id)
    assert deleted.status_code == 204
    # Refusals come back as the documented error models, parsed.
    gone = get_document.sync_detailed(client=client, document_id=accepted.id)
    assert gone.status_code == 404
    assert isinstance(gone.parsed, models.ErrorOut)
    assert gone.parsed.detail == "document not found"


def test_refusals_are_parsed_into_their_documented_models(
    generated: Path, gateway: Component
) -> None:
    models, types = _module("models"), _module("types")
    client = _signed_in(gateway.base_url or "")
    upload, chat = _module("api.documents.upload"), _module("api.chat.chat")
    verify = _module("api.auth.verify")

    unsupported = types.File(payload=io.BytesIO(b"PK\x03\x04"), file_name="deck.pptx")
    refused = upload.sync_detailed(client=client, body=models.BodyUpload(file=unsupported))
    assert refused.status_code == 415
    assert "unsupported file type" in refused.parsed.detail

    # Valid by the schema; this stack has no generative model: the documented 400.
    hyde = chat.sync_detailed(client=client, body=models.ChatBody(message="why?", hyde=True))
    assert hyde.status_code == 400
    assert "generative model" in hyde.parsed.detail

    blank = chat.sync_detailed(client=client, body=models.ChatBody(message="   "))
    assert blank.status_code == 422
    assert isinstance(blank.parsed, models.HTTPValidationError)
    assert blank.parsed.detail[0].loc == ["body", "message"]

    stranger = _module("client").AuthenticatedClient(
        base_url=gateway.base_url or "", token="not-a-token", raise_on_unexpected_status=True
    )
    denied = verify.sync_detailed(client=stranger)
    assert denied.status_code == 401
    assert isinstance(denied.parsed, models.ErrorOut)
