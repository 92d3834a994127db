"""The Bedrock providers on a real bedrock-runtime client: botocore's Stubber
for plain calls, and a loopback HTTP server for what Stubber cannot give
(ConverseStream's binary event stream, concurrent calls)."""

from __future__ import annotations

import io
import json
import math
import struct
import threading
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from query.llm import Message, build_chat_model
from query.llm.bedrock import BedrockChatModel
from shared.adapters.embedding import build_embedder
from shared.adapters.embedding.bedrock import BedrockEmbedder
from shared.config import Settings
from shared.errors import RagError, Unavailable

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"
MESSAGES = [Message("system", "Cite sources."), Message("user", "Hi?")]
CREDENTIALS = {"aws_access_key_id": "AKIATEST", "aws_secret_access_key": "not-a-secret"}


def _runtime(endpoint_url: str | None = None) -> Any:
    return boto3.client(
        "bedrock-runtime", region_name="eu-west-1", endpoint_url=endpoint_url, **CREDENTIALS
    )


@pytest.fixture
def client() -> Iterator[tuple[Any, Stubber]]:
    runtime = _runtime()
    with Stubber(runtime) as stubber:
        yield runtime, stubber
        stubber.assert_no_pending_responses()


def _expected_request() -> dict[str, Any]:
    return {
        "modelId": MODEL,
        "system": [{"text": "Cite sources."}],
        "messages": [{"role": "user", "content": [{"text": "Hi?"}]}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.0},
    }


def _converse_reply(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": list(blocks)}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},
        "metrics": {"latencyMs": 10},
    }


async def test_converse_puts_system_apart_and_returns_the_text(
    client: tuple[Any, Stubber],
) -> None:
    runtime, stubber = client
    stubber.add_response("converse", _converse_reply({"text": "Hello [1]"}), _expected_request())
    model = BedrockChatModel(runtime, MODEL, temperature=0.0, max_tokens=64)
    assert await model.complete(MESSAGES) == "Hello [1]"


async def test_converse_joins_turns_of_one_role_and_skips_reasoning(
    client: tuple[Any, Stubber],
) -> None:
    runtime, stubber = client
    expected = _expected_request()
    expected["messages"] = [
        {"role": "user", "content": [{"text": "Earlier question"}, {"text": "Hi?"}]}
    ]
    expected["inferenceConfig"] = {"maxTokens": 10, "temperature": 0.5}
    reasoning = {"reasoningContent": {"reasoningText": {"text": "thinking"}}}
    stubber.add_response("converse", _converse_reply(reasoning, {"text": "Hello"}), expected)
    model = BedrockChatModel(runtime, MODEL, temperature=0.5, max_tokens=64)
    turns = [MESSAGES[0], Message("user", "Earlier question"), MESSAGES[1]]
    assert await model.complete(turns, max_tokens=10) == "Hello"


async def test_throttling_is_unavailable(client: tuple[Any, Stubber]) -> None:
    runtime, stubber = client
    stubber.add_client_error("converse", "ThrottlingException", "slow down", 429)
    model = BedrockChatModel(runtime, MODEL, temperature=0.0, max_tokens=64)
    with pytest.raises(Unavailable, match=r"Bedrock.*ThrottlingException"):
        await model.complete(MESSAGES)


# --- a loopback Bedrock, for streams and concurrent calls ----------------------


def _frame(headers: dict[str, str], payload: dict[str, Any]) -> bytes:
    """One message in AWS's binary event-stream framing."""
    encoded = b""
    for name, value in headers.items():
        encoded += bytes([len(name)]) + name.encode() + b"\x07"  # 7: a string value
        encoded += struct.pack(">H", len(value)) + value.encode()
    body = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(encoded) + len(body) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + body
    return message + struct.pack(">I", zlib.crc32(message))


def _event(event_type: str, payload: dict[str, Any]) -> bytes:
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return _frame(headers, payload)


def _exception(exception_type: str, message: str) -> bytes:
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return _frame(headers, {"message": message})


def _delta(text: str) -> bytes:
    return _event("contentBlockDelta", {"delta": {"text": text}, "contentBlockIndex": 0})


STREAM = [
    _event("messageStart", {"role": "assistant"}),
    _delta("Hello "),
    _delta("there [1]"),
    _event("contentBlockStop", {"contentBlockIndex": 0}),
    _event("messageStop", {"stopReason": "end_turn"}),
]


@dataclass
class FakeBedrock:
    """Answers ConverseStream with ``stream``'s frames and InvokeModel with
    ``invoke(body)``; records (path, body) of every request."""

    stream: list[bytes] = field(default_factory=lambda: list(STREAM))
    invoke: Callable[[dict[str, Any]], dict[str, Any]] = lambda body: {}
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                path = unquote(self.path)
                fake.requests.append((path, body))
                if path.endswith("/converse-stream"):
                    reply, kind = b"".join(fake.stream), "application/vnd.amazon.eventstream"
                else:
                    reply, kind = json.dumps(fake.invoke(body)).encode(), "application/json"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_: object) -> None:
                pass

        return Handler


@pytest.fixture
def bedrock() -> Iterator[tuple[FakeBedrock, Any]]:
    fake = FakeBedrock()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake, _runtime(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


async def _collect(stream: AsyncIterator[str], into: list[str]) -> None:
    async for piece in stream:
        into.append(piece)


async def test_converse_stream_yields_the_text_deltas(bedrock: tuple[FakeBedrock, Any]) -> None:
    fake, runtime = bedrock
    model = BedrockChatModel(runtime, MODEL, temperature=0.0, max_tokens=64)
    assert [piece async for piece in model.stream(MESSAGES)] == ["Hello ", "there [1]"]
    [(path, body)] = fake.requests
    assert path == f"/model/{MODEL}/converse-stream"
    expected = _expected_request()
    del expected["modelId"]
    assert body == expected


async def test_an_error_inside_the_stream_is_unavailable(bedrock: tuple[FakeBedrock, Any]) -> None:
    fake, runtime = bedrock
    fake.stream = [*STREAM[:2], _exception("throttlingException", "slow down")]
    model = BedrockChatModel(runtime, MODEL, temperature=0.0, max_tokens=64)
    pieces: list[str] = []
    with pytest.raises(Unavailable, match=r"Bedrock.*throttlingException"):
        await _collect(model.stream(MESSAGES), pieces)
    assert pieces == ["Hello "]


async def test_a_reader_may_stop_early(bedrock: tuple[FakeBedrock, Any]) -> None:
    _, runtime = bedrock
    model = BedrockChatModel(runtime, MODEL, temperature=0.0, max_tokens=64)
    stream = model.stream(MESSAGES)
    assert isinstance(stream, AsyncGenerator)
    assert await anext(stream) == "Hello "
    await stream.aclose()


async def test_titan_calls_run_side_by_side_and_keep_their_order(
    bedrock: tuple[FakeBedrock, Any],
) -> None:
    fake, runtime = bedrock

    def along_axis(body: dict[str, Any]) -> dict[str, Any]:
        # Each text's vector points along the axis its number names.
        vector = [0.0] * 8
        vector[int(body["inputText"])] = 5.0
        return {"embedding": vector}

    fake.invoke = along_axis
    embedder = BedrockEmbedder(runtime, TITAN, dim=8)
    vectors = await embedder.embed_documents([str(i) for i in range(8)])
    assert [v.index(1.0) for v in vectors] == list(range(8))
    assert {path for path, _ in fake.requests} == {f"/model/{TITAN}/invoke"}
    assert fake.requests[0][1] == {"inputText": ANY, "dimensions": 8, "normalize": True}


# --- embeddings through Stubber ----------------------------------------------------


def _body(payload: dict[str, Any]) -> StreamingBody:
    raw = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def _invoke(model_id: str, reply: dict[str, Any], body: Any) -> tuple[dict[str, Any], ...]:
    expected = {
        "modelId": model_id,
        "body": body,
        "contentType": "application/json",
        "accept": "application/json",
    }
    return {"body": _body(reply), "contentType": "application/json"}, expected


async def test_titan_embeds_one_text_per_call(client: tuple[Any, Stubber]) -> None:
    runtime, stubber = client
    for text, vector in (("a", [3.0, 4.0]), ("b", [0.0, 2.0])):
        body = json.dumps({"inputText": text, "dimensions": 2, "normalize": True})
        stubber.add_response("invoke_model", *_invoke(TITAN, {"embedding": vector}, body))
    embedder = BedrockEmbedder(runtime, TITAN, dim=2)
    # One at a time, so the stubbed replies meet the calls in order.
    assert await embedder.embed_documents(["a"]) == [[0.6, 0.8]]
    assert await embedder.embed_query("b") == [0.0, 1.0]


async def test_cohere_embeds_in_batches_of_96_with_the_input_type(
    client: tuple[Any, Stubber],
) -> None:
    runtime, stubber = client
    texts = [f"passage {i}" for i in range(97)]
    for batch, input_type in (
        (texts[:96], "search_document"),
        (texts[96:], "search_document"),
        (["question"], "search_query"),
    ):
        body = json.dumps({"texts": batch, "input_type": input_type, "truncate": "END"})
        reply = {"embeddings": [[1.0, 1.0]] * len(batch), "response_type": "embeddings_floats"}
        stubber.add_response("invoke_model", *_invoke(COHERE, reply, body))
    embedder = BedrockEmbedder(runtime, COHERE, dim=2)
    vectors = await embedder.embed_documents(texts)
    assert len(vectors) == 97
    assert math.isclose(vectors[0][0], 1 / math.sqrt(2))
    assert await embedder.embed_query("question") == vectors[0]


@pytest.mark.parametrize(
    "reply",
    [{"message": "no vector"}, {"embedding": [0.0, 0.0]}, {"embedding": [1.0, 2.0, 3.0]}],
)
async def test_a_reply_without_a_usable_vector_is_unavailable(
    client: tuple[Any, Stubber], reply: dict[str, Any]
) -> None:
    runtime, stubber = client
    stubber.add_response("invoke_model", *_invoke(TITAN, reply, ANY))
    with pytest.raises(Unavailable, match=r"bedrock:amazon\.titan"):
        await BedrockEmbedder(runtime, TITAN, dim=2).embed_query("a")


def test_the_factories_build_bedrock_models_from_settings() -> None:
    settings = Settings(
        llm_provider="bedrock",
        embedding_provider="bedrock",
        embedding_model=COHERE,
        aws_region="eu-west-1",
    )
    model = build_chat_model(settings)
    assert isinstance(model, BedrockChatModel)
    assert model.name == MODEL
    embedder = build_embedder(settings)
    assert (embedder.name, embedder.dim) == (f"bedrock:{COHERE}", 1024)
    assert build_chat_model(Settings(llm_provider="extractive")) is None
    with pytest.raises(RagError, match="neither"):
        BedrockEmbedder(_runtime(), "meta.llama3-8b-instruct-v1:0", dim=8)
