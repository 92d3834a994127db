"""Chat with any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, TGI)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
from openai import APIError, AsyncOpenAI

from query.llm.base import Message
from shared.adapters.providers import openai_client, openai_error
from shared.config import Settings
from shared.errors import Unavailable

DEFAULT_MODEL = "gpt-4o-mini"


class OpenAIChatModel:
    def __init__(
        self, client: AsyncOpenAI, model: str, *, temperature: float, max_tokens: int
    ) -> None:
        self._client = client
        self._temperature = temperature
        self._max_tokens = max_tokens
        self.name = model

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIChatModel:
        """The client carries ``LLM_TIMEOUT`` (per request, and per read of a stream)."""
        return cls(
            openai_client(settings),
            settings.llm_model or DEFAULT_MODEL,
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
        )

    async def aclose(self) -> None:
        await self._client.close()

    def _params(self, messages: Sequence[Message], max_tokens: int | None) -> dict[str, Any]:
        # max_tokens, not max_completion_tokens: it is what other servers understand.
        return {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": self._temperature,
            "max_tokens": max_tokens or self._max_tokens,
        }

    async def stream(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> AsyncIterator[str]:
        try:
            chunks = await self._client.chat.completions.create(
                **self._params(messages, max_tokens), stream=True
            )
        except APIError as exc:
            raise openai_error(exc) from None
        try:
            async for chunk in chunks:
                text = _delta(chunk)
                if text:
                    yield text
        except APIError as exc:
            raise openai_error(exc) from None
        except httpx.HTTPError as exc:
            # openai before 3.x let a stream's transport errors through unwrapped.
            raise Unavailable(
                f"the OpenAI-compatible server failed: {type(exc).__name__}"
            ) from None
        finally:
            # A reader that stops early (cancelled, disconnected) ends the
            # generation on the server too, instead of paying for unread tokens.
            await chunks.close()

    async def complete(self, messages: Sequence[Message], *, max_tokens: int | None = None) -> str:
        try:
            response = await self._client.chat.completions.create(
                **self._params(messages, max_tokens)
            )
        except APIError as exc:
            raise openai_error(exc) from None
        # The client builds replies without validating them: check the shape here.
        try:
            content = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            raise Unavailable("the OpenAI-compatible server returned no message") from None
        return content if isinstance(content, str) else ""


def _delta(chunk: Any) -> str | None:
    try:
        choices = chunk.choices or []
        text = choices[0].delta.content if choices else None
    except (AttributeError, IndexError, TypeError):
        raise Unavailable("the OpenAI-compatible server streamed a malformed chunk") from None
    return text if isinstance(text, str) else None
