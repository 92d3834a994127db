"""Chat with AWS Bedrock models through the Converse API.

boto3 blocks: a whole reply is fetched in a worker thread, and a stream is read
by a thread of its own that hands each delta to the event loop through a
queue, so the loop never waits on the network and a long stream does not hold
one of the default executor's few threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from query.llm.base import Message
from shared.adapters.providers import bedrock_client, bedrock_error
from shared.config import Settings
from shared.errors import Unavailable

DEFAULT_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"

# What the reading thread hands over: a delta, a failure, or None at the end.
_Item = str | Unavailable | None


class BedrockChatModel:
    def __init__(self, client: Any, model: str, *, temperature: float, max_tokens: int) -> None:
        self._client = client
        self._temperature = temperature
        self._max_tokens = max_tokens
        self.name = model

    async def aclose(self) -> None:
        self._client.close()

    @classmethod
    def from_settings(cls, settings: Settings) -> BedrockChatModel:
        return cls(
            bedrock_client(settings),
            settings.llm_model or DEFAULT_MODEL,
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
        )

    def _request(self, messages: Sequence[Message], max_tokens: int | None) -> dict[str, Any]:
        turns: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "system":
                continue
            # Converse refuses two turns of one role in a row: join them.
            if turns and turns[-1]["role"] == m.role:
                turns[-1]["content"].append({"text": m.content})
            else:
                turns.append({"role": m.role, "content": [{"text": m.content}]})
        request: dict[str, Any] = {
            "modelId": self.name,
            "messages": turns,
            "inferenceConfig": {
                "maxTokens": max_tokens or self._max_tokens,
                "temperature": self._temperature,
            },
        }
        # Converse takes system prompts apart from the turns.
        system = [{"text": m.content} for m in messages if m.role == "system"]
        if system:
            request["system"] = system
        return request

    async def complete(self, messages: Sequence[Message], *, max_tokens: int | None = None) -> str:
        try:
            response = await asyncio.to_thread(
                self._client.converse, **self._request(messages, max_tokens)
            )
        except (ClientError, BotoCoreError) as exc:
            raise bedrock_error(exc) from None
        try:
            blocks = response["output"]["message"]["content"]
            # Blocks without text (reasoning, tool use) are not part of the answer.
            return "".join(block["text"] for block in blocks if "text" in block)
        except (KeyError, TypeError):
            raise Unavailable("AWS Bedrock returned no message") from None

    def _deltas(self, request: dict[str, Any], stop: threading.Event) -> Iterator[str]:
        events = self._client.converse_stream(**request)["stream"]
        try:
            for event in events:
                if stop.is_set():
                    return  # nobody reads on: stop paying for tokens
                delta = event.get("contentBlockDelta", {}).get("delta", {})
                text = delta.get("text")
                if isinstance(text, str) and text:
                    yield text
        finally:
            events.close()

    def _pump(
        self, request: dict[str, Any], stop: threading.Event, put: Callable[[_Item], None]
    ) -> None:
        try:
            for text in self._deltas(request, stop):
                put(text)
            put(None)
        except (ClientError, BotoCoreError) as exc:
            # Throttling or a model error mid-stream arrives here too.
            put(bedrock_error(exc))
        except Exception:
            put(Unavailable("AWS Bedrock sent a stream that could not be read"))

    async def stream(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        stop = threading.Event()

        def put(item: _Item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is left to read
                stop.set()

        reader = threading.Thread(
            target=self._pump,
            args=(self._request(messages, max_tokens), stop, put),
            name="bedrock-stream",
            daemon=True,
        )
        reader.start()
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, Unavailable):
                    raise item
                yield item
        finally:
            stop.set()
