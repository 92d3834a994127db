"""LangSmith tracing: off unless its own variables turn it on; then runs reach
the configured endpoint (a local server here)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared.runtime.tracing import traced, tracing_enabled


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
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_TRACING_V2",
                 "LANGCHAIN_TRACING", "LANGCHAIN_API_KEY"):  # fmt: skip
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
