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
