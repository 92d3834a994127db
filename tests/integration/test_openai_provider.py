"""The OpenAI-compatible providers against a real server speaking the wire format."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, AsyncIterator, Iterator

import pytest
from pydantic import SecretStr

from query.llm import Message, build_chat_model
from query.llm.openai import OpenAIChatModel
from shared.adapters.embedding import build_embedder
from shared.adapters.embedding.openai import OpenAIEmbedder
from shared.config import Settings
from shared.errors import Unavailable
from tests.support.openai_server import FakeOpenAI, RunningServer

KEY = "sk-test-secret-key-0123456789"
MESSAGES = [Message("system", "Be brief."), Message("user", "What is the capital of Peru?")]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with RunningServer(FakeOpenAI()) as running:
        yield running


@pytest.fixture
def fake(server: FakeOpenAI) -> FakeOpenAI:
    """The shared server, with this test's script starting from the defaults."""
    defaults = FakeOpenAI(port=server.port)
    for name in ("reply", "token_delay", "fail_status", "drop_after_pieces", "embedding_dim"):
        setattr(server, name, getattr(defaults, name))
    return server


def _settings(fake: FakeOpenAI, **more: object) -> Settings:
    values: dict[str, object] = {
        "llm_provider": "openai",
        "llm_model": "local-model",
        "llm_temperature": 0.2,
        "embedding_provider": "openai",
        "embedding_model": "local-embed",
        "embedding_dim": 32,
        "embedding_batch_size": 3,
        "openai_base_url": fake.base_url,
        "openai_api_key": SecretStr(KEY),
    }
    return Settings(**{**values, **more})  # type: ignore[arg-type]


async def _collect(stream: AsyncIterator[str], into: list[str]) -> None:
    async for piece in stream:
        into.append(piece)


def _chat(settings: Settings) -> OpenAIChatModel:
    model = build_chat_model(settings)
    assert isinstance(model, OpenAIChatModel)
    return model


async def test_streaming_chat_yields_the_deltas_in_order(fake: FakeOpenAI) -> None:
    fake.reply = lambda messages: "Lima is the capital [1]"
    model = _chat(_settings(fake))
    pieces = [piece async for piece in model.stream(MESSAGES, max_tokens=50)]
    assert pieces == ["Lima ", "is ", "the ", "capital ", "[1]"]
    request = fake.chats()[-1]
    assert request["stream"] is True
    assert request["model"] == "local-model"
    assert request["max_tokens"] == 50
    assert request["temperature"] == pytest.approx(0.2)
    assert request["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of Peru?"},
    ]
    assert fake.received[-1].authorization == f"Bearer {KEY}"


async def test_complete_returns_the_whole_text(fake: FakeOpenAI) -> None:
    fake.reply = lambda messages: f"{len(messages)} messages seen"
    model = _chat(_settings(fake, llm_max_tokens=123))
    assert await model.complete(MESSAGES) == "2 messages seen"
    request = fake.chats()[-1]
    assert not request.get("stream")
    assert request["max_tokens"] == 123
    assert request["temperature"] == pytest.approx(0.2)


async def test_aclose_closes_the_client_and_its_connections(fake: FakeOpenAI) -> None:
    fake.reply = lambda messages: "fine"
    model = _chat(_settings(fake))
    assert await model.complete(MESSAGES) == "fine"  # a kept-alive connection now
    client = model._client
    assert not client.is_closed()
    await model.aclose()
    # Closed now, by its owner: not later by a finalizer (query.llm.base).
    assert client.is_closed()


async def test_a_local_server_needs_no_key(fake: FakeOpenAI) -> None:
    fake.reply = lambda messages: "fine"
    model = _chat(_settings(fake, openai_api_key=None))
    assert await model.complete(MESSAGES) == "fine"
    assert fake.received[-1].authorization == "Bearer not-needed"


async def test_a_reader_that_stops_early_ends_the_stream_on_the_server(fake: FakeOpenAI) -> None:
    fake.reply = lambda messages: " ".join(["word"] * 50)
    fake.token_delay = 0.02
    abandoned = fake.abandoned
    stream = _chat(_settings(fake)).stream(MESSAGES)
    assert isinstance(stream, AsyncGenerator)
    assert await anext(stream) == "word "
    await stream.aclose()  # what cancelling the consumer does
    for _ in range(100):
        if fake.abandoned > abandoned:
            break
        await asyncio.sleep(0.02)
    assert fake.abandoned == abandoned + 1


async def test_a_stream_cut_short_is_unavailable(fake: FakeOpenAI) -> None:
    fake.reply = lambda messages: "one two three four"
    fake.drop_after_pieces = 2
    pieces: list[str] = []
    with pytest.raises(Unavailable) as raised:
        await _collect(_chat(_settings(fake)).stream(MESSAGES), pieces)
    assert pieces == ["one ", "two "]
    assert KEY not in raised.value.message


async def test_embeddings_are_unit_vectors_in_batches(fake: FakeOpenAI) -> None:
    embedder = build_embedder(_settings(fake))
    assert isinstance(embedder, OpenAIEmbedder)
    assert (embedder.name, embedder.dim) == ("openai:local-embed", 32)
    before = len(fake.embeddings())
    vectors = await embedder.embed_documents([f"text {i}" for i in range(7)])
    sent = fake.embeddings()[before:]
    assert [len(body["input"]) for body in sent] == [3, 3, 1]
    assert {body["model"] for body in sent} == {"local-embed"}
    assert len(vectors) == 7
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0) for v in vectors)
    assert vectors[0] == await embedder.embed_query("text 0")
    assert vectors[0] != vectors[1]


async def test_a_known_model_has_its_size_before_any_call(fake: FakeOpenAI) -> None:
    embedder = build_embedder(Settings(embedding_provider="openai", openai_base_url=fake.base_url))
    assert (embedder.name, embedder.dim) == ("openai:text-embedding-3-small", 1536)


async def test_ensure_ready_checks_the_size_against_the_server(fake: FakeOpenAI) -> None:
    embedder = build_embedder(_settings(fake))
    assert isinstance(embedder, OpenAIEmbedder)
    await embedder.ensure_ready()
    fake.embedding_dim = 48
    with pytest.raises(Unavailable, match="EMBEDDING_DIM"):
        await embedder.ensure_ready()


@pytest.mark.parametrize("status", [500, 429])
async def test_server_errors_are_unavailable_without_the_key(fake: FakeOpenAI, status: int) -> None:
    fake.fail_status = status
    settings = _settings(fake)
    model = _chat(settings)
    with pytest.raises(Unavailable) as raised:
        await model.complete(MESSAGES)
    assert str(status) in raised.value.message
    assert "OpenAI" in raised.value.message
    assert KEY not in raised.value.message
    with pytest.raises(Unavailable) as streamed:
        _ = [piece async for piece in model.stream(MESSAGES)]
    assert KEY not in streamed.value.message
    with pytest.raises(Unavailable) as embedded:
        await build_embedder(settings).embed_query("x")
    assert KEY not in embedded.value.message
    assert KEY not in repr(embedded.value)


async def test_a_server_that_is_down_is_unavailable() -> None:
    down = FakeOpenAI()  # never started: nothing listens on its port
    model = _chat(_settings(down, llm_timeout=2))
    with pytest.raises(Unavailable, match="APIConnectionError"):
        await model.complete(MESSAGES)
