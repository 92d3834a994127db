"""LangSmith tracing: off unless its own variables turn it on; then runs reach
the configured endpoint (a local server here)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from query.cancellation import Cancellations
from shared.config import Settings
from shared.contracts.events import ChatOptions, ChatRequest
from shared.runtime.tracing import traced, tracing_enabled
from shared.storage import chat_history
from shared.storage.vectorstore import Hit


@dataclass
class Collector:
    """What a LangSmith endpoint was sent: (method, path, body)."""

    received: list[tuple[str, str, bytes]] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                collector.received.append((self.command, self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = do_PATCH = do_PUT = _answer

            def log_message(self, *_: object) -> None:
                pass

        return Handler

    def sent(self) -> list[tuple[str, str, bytes]]:
        return [r for r in self.received if r[0] != "GET"]


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    import langsmith.run_trees
    import langsmith.utils

    found = Collector()
    server = ThreadingHTTPServer(("127.0.0.1", 0), found.handler())
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    for name in (
        "LANGSMITH_TRACING",
        "LANGCHAIN_TRACING_V2",
        "LANGSMITH_TRACING_V2",
        "LANGCHAIN_TRACING",
        "LANGCHAIN_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANGSMITH_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2-test-key")
    monkeypatch.setenv("LANGSMITH_PROJECT", "ragstream-tests")
    # langsmith caches what it read of the environment and the client it built.
    langsmith.utils.get_env_var.cache_clear()  # type: ignore[attr-defined]
    monkeypatch.setattr(langsmith.run_trees, "_CLIENT", None)
    yield found
    langsmith.utils.get_env_var.cache_clear()  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def _flush() -> None:
    from langsmith.run_trees import get_cached_client

    get_cached_client().flush(timeout=10)


async def _retrieve(question: str) -> str:
    return question.upper()


async def _tokens(text: str) -> AsyncIterator[str]:
    for word in text.split():
        yield word


async def test_nothing_is_traced_or_sent_when_tracing_is_off(collector: Collector) -> None:
    assert not tracing_enabled()
    wrapped = traced("retrieve")(_retrieve)
    assert wrapped is _retrieve
    assert await wrapped("q") == "Q"
    assert collector.received == []


async def test_a_switch_without_a_key_sends_nothing(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.delenv("LANGSMITH_API_KEY")
    assert not tracing_enabled()
    assert traced("retrieve")(_retrieve) is _retrieve


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({"LANGSMITH_TRACING": "true", "LANGSMITH_API_KEY": "k"}, True),
        ({"LANGCHAIN_TRACING_V2": "true", "LANGSMITH_API_KEY": "k"}, True),
        ({"LANGCHAIN_TRACING_V2": "true", "LANGCHAIN_API_KEY": "k"}, True),
        ({"LANGSMITH_TRACING": "false", "LANGSMITH_API_KEY": "k"}, False),
        # As langsmith reads them: a V2 switch wins, and only "true" counts.
        (
            {
                "LANGCHAIN_TRACING_V2": "false",
                "LANGSMITH_TRACING": "true",
                "LANGSMITH_API_KEY": "k",
            },
            False,
        ),
        ({"LANGSMITH_TRACING": "True", "LANGSMITH_API_KEY": "k"}, False),
        ({"LANGSMITH_API_KEY": "k"}, False),
        ({}, False),
    ],
)
def test_the_switches_are_read_as_langsmith_reads_them(
    environ: dict[str, str], enabled: bool
) -> None:
    assert tracing_enabled(environ) is enabled


async def test_runs_reach_the_endpoint_when_tracing_is_on(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    assert tracing_enabled()
    retrieve = traced("retrieve-step", run_type="retriever")(_retrieve)
    tokens = traced("generate-step", run_type="llm")(_tokens)
    assert retrieve is not _retrieve
    assert await retrieve("q") == "Q"
    assert [t async for t in tokens("a b c")] == ["a", "b", "c"]
    _flush()
    sent = collector.sent()
    assert any("runs" in path for _, path, _ in sent), collector.received
    bodies = b"".join(body for _, _, body in sent)
    assert b"retrieve-step" in bodies
    assert b"generate-step" in bodies
    assert b"ragstream-tests" in bodies
    assert b"lsv2-test-key" not in bodies


def _runs(collector: Collector) -> dict[str, dict[str, Any]]:
    """Each run sent (multipart ingestion), by name: its fields, inputs and
    outputs."""
    by_id: dict[str, dict[str, Any]] = {}
    for _, path, body in collector.sent():
        if not path.startswith("/runs/multipart"):
            continue
        boundary = body.split(b"\r\n", 1)[0]
        for part in body.split(boundary)[1:]:
            head, _, payload = part.partition(b"\r\n\r\n")
            named = re.search(rb'name="(?:post|patch)\.([^"]+)"', head)
            if not named:
                continue
            run_id, _, kind = named.group(1).decode().partition(".")
            value = json.loads(payload)
            run = by_id.setdefault(run_id, {})
            run.update({kind: value} if kind else value)
    return {run["name"]: run for run in by_id.values()}


def _traced_copy(name: str) -> ModuleType:
    """A fresh copy of module ``name`` whose ``traced`` decorators ran with
    tracing on (they apply at import; the module already imported keeps its
    own, and nothing else sees the copy)."""
    original = importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(f"{name}_traced", original.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


HIT = Hit(
    chunk_id="c-1",
    document_id=uuid.uuid4(),
    filename="office.md",
    chunk_index=0,
    text="The office opens at nine.",
    score=1.0,
)


class _Steps:
    """Retriever, reranker, compressor, model, evidence reader, generator,
    reply stream: each the least that answers."""

    name = "fake-model"

    def __init__(self) -> None:
        self.finished = False
        self.tokens: list[str] = []

    async def retrieve(self, owner: object, question: str, **_: object) -> list[Hit]:
        return [HIT]

    async def rerank(self, question: str, hits: list[Hit], k: int, owner: object) -> list[Hit]:
        return hits[:k]

    async def compress(self, question: str, hits: list[Hit]) -> list[Hit]:
        return hits

    async def complete(self, messages: object, *, max_tokens: int | None = None) -> str:
        return "The office opens at nine in the morning."

    async def read(self, question: str, hits: list[Hit]) -> SimpleNamespace:
        return SimpleNamespace(best=5.0, relevant=lambda threshold: True)

    async def stream(self, question: str, hits: list[Hit], *_: object) -> AsyncIterator[str]:
        for word in ("At ", "nine ", "[1]."):
            yield word

    async def sources(self, sources: object) -> None:
        pass

    async def token(self, piece: str) -> None:
        self.tokens.append(piece)

    async def done(self, cited: object, *, grounded: bool, turn: int | None = None) -> None:
        self.finished = True


async def test_a_chat_is_one_trace_with_a_child_run_per_step(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    pipeline_module = _traced_copy("query.pipeline")
    chat_module = _traced_copy("query.chat")
    steps = _Steps()

    async def remembered(*_: object, **__: object) -> None:
        pass

    monkeypatch.setattr(chat_history, "append_exchange", remembered)
    settings = Settings(memory_turns=0, rag_use_cache=False)
    pipeline = pipeline_module.RetrievalPipeline(
        retriever=steps,
        rerankers={"mmr": steps},
        compressor=steps,
        model=steps,
        candidates=10,
        rerank_candidates=10,
        memory_turns=0,
    )
    handler = chat_module.ChatHandler(
        SimpleNamespace(settings=settings, pool=None), pipeline, steps, Cancellations(), steps
    )
    request = ChatRequest(
        correlation_id="c",
        tenant_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        message="When does the office open?",
        deadline=datetime.now(UTC) + timedelta(seconds=30),
        options=ChatOptions(hyde=True, reranking="mmr", compression=True),
    )
    await handler._answer(request, steps)
    assert steps.finished and "".join(steps.tokens) == "At nine [1]."
    _flush()

    runs = _runs(collector)
    steps_of_retrieve = {"condense", "hyde", "search", "rerank", "compress"}
    assert set(runs) == {"chat", "retrieve", "generate"} | steps_of_retrieve, sorted(runs)
    chat = runs["chat"]
    assert "parent_run_id" not in chat
    assert runs["retrieve"]["parent_run_id"] == chat["id"]
    assert runs["generate"]["parent_run_id"] == chat["id"]
    for name in steps_of_retrieve:
        assert runs[name]["parent_run_id"] == runs["retrieve"]["id"], name
        assert runs[name]["trace_id"] == chat["id"], name
    assert runs["search"]["run_type"] == "retriever"
    assert runs["generate"]["run_type"] == "llm"
    assert "The office opens at nine." in json.dumps(runs["search"]["outputs"])
    assert runs["generate"]["outputs"] == {"output": ["At ", "nine ", "[1]."]}
    assert "nine in the morning" in json.dumps(runs["hyde"]["outputs"])
