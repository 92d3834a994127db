import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

from query.answerer import NOTHING_FOUND
from query.generation import LLMGenerator, cited_numbers
from query.llm.base import Message
from query.prompts import answer_messages
from shared.storage.vectorstore import Hit


class ScriptedChat:
    """Streams the scripted deltas and records what it was asked."""

    name = "scripted"

    def __init__(self, deltas: list[str]) -> None:
        self.deltas = deltas
        self.calls: list[tuple[list[Message], int | None]] = []

    async def stream(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> AsyncIterator[str]:
        self.calls.append((list(messages), max_tokens))
        for delta in self.deltas:
            yield delta

    async def complete(self, messages: Sequence[Message], *, max_tokens: int | None = None) -> str:
        raise AssertionError("the answer is streamed")


def _hit(text: str) -> Hit:
    return Hit(uuid.uuid4().hex, uuid.uuid4(), "policy.md", 0, text, 0.5)


@pytest.mark.parametrize(
    ("answer", "n_sources", "expected"),
    [
        ("Staff get 25 days [1].", 3, [1]),
        ("Leave is 25 days [2, 3] and carries over [1].", 3, [2, 3, 1]),
        ("Both say so [1][3].", 3, [1, 3]),
        ("Repeated [2] and again [2].", 3, [2]),
        ("Out of range [0] [4] [7, 2].", 3, [2]),
        ("A range [2-4] and [1\u20132].", 5, [2, 3, 4, 1]),
        ("Semicolons [1; 3] and words [2 and 3].", 3, [1, 3, 2]),
        ("Spaces [ 2 ] count.", 2, [2]),
        ("No citations here.", 3, []),
        ("Code like items[1] or a [link](http://x) or [a] is not a citation.", 3, []),
        ("Anything cited with no sources [1].", 0, []),
        ("A huge range [1-1000000000] stays bounded.", 2, [1, 2]),
    ],
)
def test_cited_numbers(answer: str, n_sources: int, expected: list[int]) -> None:
    assert cited_numbers(answer, n_sources) == expected


async def test_streams_the_models_deltas_from_the_built_messages() -> None:
    model = ScriptedChat(["Staff get ", "", "25 days", " [1]."])
    hits = [_hit("Staff get 25 days of paid leave.")]
    generator = LLMGenerator(model, max_tokens=321)
    pieces = [piece async for piece in generator.stream("How much leave?", hits)]
    assert pieces == ["Staff get ", "25 days", " [1]."]
    [(messages, max_tokens)] = model.calls
    assert messages == answer_messages("How much leave?", hits, [])
    assert max_tokens == 321


async def test_history_reaches_the_model() -> None:
    model = ScriptedChat(["None [1]."])
    history = [Message("user", "Leave policy?"), Message("assistant", "25 days [1].")]
    hits = [_hit("Contractors get no paid leave.")]
    generator = LLMGenerator(model, max_tokens=100)
    answer = "".join([p async for p in generator.stream("And contractors?", hits, history)])
    assert answer == "None [1]."
    [(messages, _)] = model.calls
    assert messages == answer_messages("And contractors?", hits, history)


async def test_without_hits_it_says_so_without_asking_the_model() -> None:
    model = ScriptedChat(["invented"])
    generator = LLMGenerator(model, max_tokens=100)
    answer = "".join([p async for p in generator.stream("Anything?", [])])
    assert answer == NOTHING_FOUND
    assert model.calls == []
