"""What every chat model offers: messages in, text out (streamed or whole)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


class ChatModel(Protocol):
    name: str

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> AsyncIterator[str]:
        """Text deltas as the model produces them."""
        ...

    async def complete(self, messages: Sequence[Message], *, max_tokens: int | None = None) -> str:
        """The whole reply (for query rewriting, HyDE, judging, compression)."""
        ...

    async def aclose(self) -> None:
        """Close the model's connections. Whoever drops a model must: an
        AsyncOpenAI client left to the garbage collector closes itself later
        from a finalizer, after its sockets' numbers may have gone to new
        connections, and unregisters those from the event loop (they then
        never read again)."""
        ...
