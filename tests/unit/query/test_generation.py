import uuid
from collections.abc import AsyncIterator, Sequence

from query.answerer import NOT_FOUND
from query.chat import grounding
from query.generation import LLMGenerator
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


async def test_streams_the_models_deltas_from_the_built_messages() -> None:
    model = ScriptedChat(["Staff get ", "", "25 days", " [1]."])
    hits = [_hit("Staff get 25 days of paid leave.")]
    generator = LLMGenerator(model, max_tokens=321)
    pieces = [piece async for piece in generator.stream("How much leave?", hits)]
    assert "".join(pieces) == "Staff get 25 days [1]."
    assert pieces == ["Staff get", " 25 days", " [1]."]  # a trailing space waits for what follows
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
    assert answer == NOT_FOUND
    assert model.calls == []


async def test_a_citation_of_a_source_that_does_not_exist_is_removed() -> None:
    model = ScriptedChat(["Staff get 25 days ", "[7]", " and carry over 5 ", "[2, 7]", "."])
    hits = [_hit("Staff get 25 days."), _hit("Five days carry over."), _hit("Unrelated.")]
    generator = LLMGenerator(model, max_tokens=100)
    answer = "".join([p async for p in generator.stream("Leave?", hits)])
    assert answer == "Staff get 25 days and carry over 5 [2]."
    assert grounding(answer, len(hits)) == ([2], True)


async def test_a_reply_that_cannot_find_the_answer_is_not_grounded() -> None:
    model = ScriptedChat([NOT_FOUND])
    hits = [_hit("Staff get 25 days.")]
    generator = LLMGenerator(model, max_tokens=100)
    answer = "".join([p async for p in generator.stream("Pension age?", hits)])
    assert grounding(answer, len(hits)) == ([], False)
    # An answer citing nothing is not grounded either, whatever it says.
    assert grounding("Probably 67.", 1) == ([], False)
    assert grounding(f"{NOT_FOUND} But see [1].", 1) == ([], False)
