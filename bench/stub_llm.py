"""A stand-in LLM for benchmarks: an OpenAI-compatible streaming endpoint that
writes a fixed number of tokens at a fixed rate, whatever it is asked.

The query worker talks to it as to any OpenAI-compatible server
(``LLM_PROVIDER=openai``, ``OPENAI_BASE_URL``), so the benchmark measures the
pipeline around the model, never the model. It runs as a process of its own
(``python -m bench.stub_llm --port P --tokens N --rate R``): in the
benchmark's process it would compete with the clients it is timed against.

Tokens are paced against a clock started at the request (token ``i`` leaves at
``i / rate`` seconds), so a slow event loop delays tokens but never stretches
the schedule that follows. ``--rate 0`` sends them as fast as it can.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

WORD = "tok "


def _chunk(delta: dict[str, str], finish: str | None) -> str:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "bench-stub",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


class StubLLM:
    def __init__(self, tokens: int, rate: float) -> None:
        self.tokens = tokens
        self.rate = rate

    async def _stream(self) -> AsyncIterator[str]:
        began = time.monotonic()
        yield _chunk({"role": "assistant", "content": ""}, None)
        for i in range(self.tokens):
            if self.rate > 0:
                delay = began + (i + 1) / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            yield _chunk({"content": WORD}, None)
        yield _chunk({}, "stop")
        yield "data: [DONE]\n\n"

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        if not body.get("stream"):
            message = {"role": "assistant", "content": WORD * self.tokens}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return JSONResponse(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "bench-stub",
                    "choices": [choice],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            )
        return StreamingResponse(self._stream(), media_type="text/event-stream")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--rate", type=float, default=100.0, help="tokens/s per stream; 0: max")
    args = parser.parse_args()
    stub = StubLLM(args.tokens, args.rate)
    uvicorn.run(stub.app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
