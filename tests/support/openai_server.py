"""A real HTTP server on loopback that speaks OpenAI's wire format, for tests
of everything that talks to an OpenAI-compatible model: chat completions
(streamed as ``text/event-stream`` chunks ending in ``data: [DONE]``, or
whole) and embeddings.

It runs in a thread of the test process, so workers in other processes reach
it over the socket while the test scripts its replies and reads what it was
sent::

    with RunningServer(FakeOpenAI(reply=lambda messages: "Lima [1]")) as llm:
        env = {"LLM_PROVIDER": "openai", "OPENAI_BASE_URL": llm.base_url}
        ...                      # start a worker with env, ask it something
        llm.reply = other_script  # takes effect on the next request
        assert llm.chats()[-1]["messages"][0]["role"] == "system"
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.processes import free_port

# The received messages in, the reply out: one text (streamed a word at a
# time) or the exact pieces to stream.
Reply = Callable[[list[dict[str, Any]]], str | list[str]]


def echo_last_user(messages: list[dict[str, Any]]) -> str:
    asked = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    return f"You asked: {asked}"


@dataclass(frozen=True)
class Received:
    path: str
    body: dict[str, Any]
    authorization: str | None


class _ScriptedDrop(Exception):
    """Raised inside a stream: the server drops the connection mid-reply."""


@dataclass
class FakeOpenAI:
    """What the server answers; change any field while it runs.

    ``token_delay`` seconds pass before each streamed piece. ``fail_status``
    (500, 429, ...) fails every request with that status, telling clients to
    retry after a few milliseconds so their retries stay fast.
    ``drop_after_pieces`` ends streams abruptly after that many pieces.
    ``abandoned`` counts streams whose reader went away before the end.
    """

    reply: Reply = echo_last_user
    token_delay: float = 0.0
    fail_status: int | None = None
    drop_after_pieces: int | None = None
    embedding_dim: int = 32
    received: list[Received] = field(default_factory=list)
    abandoned: int = 0
    port: int = field(default_factory=free_port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request body, in arrival order."""
        return [r.body for r in self.received]

    def chats(self) -> list[dict[str, Any]]:
        return [r.body for r in self.received if r.path.endswith("/chat/completions")]

    def embeddings(self) -> list[dict[str, Any]]:
        return [r.body for r in self.received if r.path.endswith("/embeddings")]

    async def _record(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = await request.json()
        auth = request.headers.get("authorization")
        self.received.append(Received(request.url.path, body, auth))
        return body

    def _failure(self) -> Response | None:
        if not self.fail_status:
            return None
        error = {"error": {"message": "scripted failure", "type": "server_error", "code": None}}
        return JSONResponse(error, status_code=self.fail_status, headers={"retry-after-ms": "10"})

    async def _chat(self, request: Request) -> Response:
        body = await self._record(request)
        failure = self._failure()
        if failure:
            return failure
        reply = self.reply(body["messages"])
        text = reply if isinstance(reply, str) else "".join(reply)
        if not body.get("stream"):
            return JSONResponse(_completion(body["model"], text))
        pieces = _words(reply) if isinstance(reply, str) else reply
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            self._chunks(body["model"], pieces, usage), media_type="text/event-stream"
        )

    async def _chunks(self, model: str, pieces: list[str], usage: bool) -> AsyncIterator[str]:
        finished = False
        try:
            yield _sse(_chunk(model, {"role": "assistant", "content": ""}, None))
            for sent, piece in enumerate(pieces):
                if self.drop_after_pieces is not None and sent >= self.drop_after_pieces:
                    raise _ScriptedDrop
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                yield _sse(_chunk(model, {"content": piece}, None))
            yield _sse(_chunk(model, {}, "stop"))
            if usage:
                yield _sse({**_chunk(model, {}, None), "choices": [], "usage": _USAGE})
            yield "data: [DONE]\n\n"
            finished = True
        except _ScriptedDrop:
            finished = True
            raise
        finally:
            if not finished:
                self.abandoned += 1

    async def _embeddings(self, request: Request) -> Response:
        body = await self._record(request)
        failure = self._failure()
        if failure:
            return failure
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i, "embedding": self.vector(text, as_base64)}
            for i, text in enumerate(inputs)
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )

    def vector(self, text: str, as_base64: bool = False) -> Any:
        """The same text always gets the same (not normalised) vector."""
        values: list[float] = []
        block = 0
        while len(values) < self.embedding_dim:
            digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
            values += [float(b) + 1.0 for b in digest]
            block += 1
        values = values[: self.embedding_dim]
        if not as_base64:
            return values
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            ]
        )


_USAGE = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}


def _words(text: str) -> list[str]:
    """Each word with the space after it, as models stream them."""
    words = text.split(" ")
    return [word + " " for word in words[:-1]] + [words[-1]]


def _chunk(model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _USAGE,
    }


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"


class RunningServer:
    """``with RunningServer(fake) as server:`` serves ``fake`` in a thread."""

    def __init__(self, fake: FakeOpenAI) -> None:
        config = uvicorn.Config(
            fake.app(), host="127.0.0.1", port=fake.port, log_level="warning", lifespan="off"
        )
        self.fake = fake
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the fake OpenAI server did not start on {self.fake.port}")
            time.sleep(0.02)
        return self.fake

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
