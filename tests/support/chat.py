"""A chat model for unit tests of one function: ``complete`` answers with the
scripted reply (or raises it) and records what it was sent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from query.llm.base import Message


class ScriptedChat:
    name = "scripted"

    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply
        self.calls: list[tuple[list[Message], int | None]] = []

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> AsyncIterator[str]:
        raise AssertionError("this step does not stream")

    async def complete(self, messages: Sequence[Message], *, max_tokens: int | None = None) -> str:
        self.calls.append((list(messages), max_tokens))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply
