import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

from query.compression import (
    GAP,
    EmbeddingCompressor,
    LLMCompressor,
    join_kept,
    verified,
)
from query.llm.base import Message
from query.prompts import extraction_messages
from query.sentences import split_sentences
from shared.adapters.embedding import HashingEmbedder
from shared.errors import Unavailable
from shared.storage.vectorstore import Hit

QUESTION = "How many days of paid leave do employees get?"
LEAVE = (
    "The handbook applies to all staff. Employees get 25 days of paid leave per year. "
    "The cafeteria opens at noon. Unused paid leave days carry over to the next year, "
    "up to 5 days. Parking is free for staff."
)
TRAVEL = "Travel expenses are claimed within 30 days. Receipts are required for every expense."


def _hit(text: str, n: int = 0) -> Hit:
    return Hit(f"c{n}", uuid.uuid4(), "handbook.md", n, text, 0.9 - n / 10, page=n + 1)


class PassageChat:
    """Replies to an extraction request by the first key found in the passage
    it was given, and records the prompts."""

    name = "scripted"

    def __init__(self, replies: dict[str, str | Exception]) -> None:
        self.replies = replies
        self.calls: list[tuple[list[Message], int | None]] = []

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int | None = None
    ) -> AsyncIterator[str]:
        raise AssertionError("compression does not stream")

    async def complete(self, messages: Sequence[Message], *, max_tokens: int | None = None) -> str:
        self.calls.append((list(messages), max_tokens))
        for key, reply in self.replies.items():
            if key in messages[-1].content:
                if isinstance(reply, Exception):
                    raise reply
                return reply
        raise AssertionError("no scripted reply")


# --- sentences ---------------------------------------------------------------


def test_prose_splits_into_sentences_and_wrapped_lines_are_joined() -> None:
    text = "Unused days, e.g. up to 5, carry\nover. Version 3.5 is out! Is it?\n\nNew paragraph."
    assert split_sentences(text) == [
        "Unused days, e.g. up to 5, carry over.",
        "Version 3.5 is out!",
        "Is it?",
        "New paragraph.",
    ]


def test_blocks_stay_whole() -> None:
    text = (
        "# Setup\n"
        "Install it. Then run it.\n"
        "- First item. Two sentences.\n"
        "- Second item\n"
        "  wrapped.\n"
        "\n"
        "| key | value |\n"
        "|-----|-------|\n"
        "\n"
        "```python\n"
        "x = 1. \n"
        "\n"
        "y = 2\n"
        "```\n"
        "\n"
        "    indented code\n"
        "    more code\n"
        "---\n"
        "After code."
    )
    assert split_sentences(text) == [
        "# Setup",
        "Install it.",
        "Then run it.",
        "- First item. Two sentences.",
        "- Second item wrapped.",
        "| key | value |",
        "```python\nx = 1. \n\ny = 2\n```",
        "    indented code\n    more code",
        "After code.",
    ]


def test_a_code_block_cut_off_by_the_chunk_end_stays_whole() -> None:
    assert split_sentences("Run this:\n```\nmake test. Then\nmake lint") == [
        "Run this:",
        "```\nmake test. Then\nmake lint",
    ]


def test_join_marks_dropped_sentences() -> None:
    assert join_kept(["A.", "B.", "C.", "D."], [3, 0, 1]) == f"A. B.{GAP}D."


# --- embedding compressor -------------------------------------------------------


async def test_keeps_the_sentences_close_to_the_question() -> None:
    compressor = EmbeddingCompressor(HashingEmbedder(384), threshold=0.25, max_sentences=4)
    [hit] = await compressor.compress(QUESTION, [_hit(LEAVE)])
    assert hit.text == (
        "Employees get 25 days of paid leave per year. … "
        "Unused paid leave days carry over to the next year, up to 5 days."
    )
    assert (hit.chunk_id, hit.page, hit.score) == ("c0", 1, 0.9)


async def test_max_sentences_keeps_the_best() -> None:
    compressor = EmbeddingCompressor(HashingEmbedder(384), threshold=0.25, max_sentences=1)
    [hit] = await compressor.compress(QUESTION, [_hit(LEAVE)])
    assert hit.text == "Employees get 25 days of paid leave per year."


async def test_each_passage_keeps_its_best_sentence_even_below_the_threshold() -> None:
    compressor = EmbeddingCompressor(HashingEmbedder(384), threshold=0.9, max_sentences=4)
    hits = await compressor.compress(QUESTION, [_hit(LEAVE, 0), _hit(TRAVEL, 1)])
    assert [h.chunk_id for h in hits] == ["c0", "c1"]
    assert hits[0].text == "Employees get 25 days of paid leave per year."
    assert len(split_sentences(hits[1].text)) == 1


async def test_a_passage_kept_whole_is_returned_as_it_was() -> None:
    hit = _hit("Employees get 25 days of paid leave.\nPaid leave days for employees.")
    compressor = EmbeddingCompressor(HashingEmbedder(384), threshold=-1.0, max_sentences=4)
    assert await compressor.compress(QUESTION, [hit]) == [hit]


async def test_passages_without_sentences_are_dropped_but_never_all() -> None:
    compressor = EmbeddingCompressor(HashingEmbedder(384), threshold=0.25, max_sentences=4)
    hits = await compressor.compress(QUESTION, [_hit("---", 0), _hit(LEAVE, 1)])
    assert [h.chunk_id for h in hits] == ["c1"]
    only_markup = [_hit("---", 0), _hit("  \n", 1)]
    assert await compressor.compress(QUESTION, only_markup) == only_markup[:1]
    assert await compressor.compress(QUESTION, []) == []


# --- LLM compressor ---------------------------------------------------------


def test_verified_keeps_only_text_the_passage_contains() -> None:
    sentences = split_sentences(LEAVE)
    reply = (
        "- employees get 25 days of  paid leave\nper year.\n"
        '"Unused paid leave days carry over to the next year, up to 5 days."\n'
        "Contractors get 10 days of paid leave.\n"
        "The"
    )
    assert verified(reply, sentences) == [1, 3]


async def test_keeps_only_quoted_sentences_and_never_invented_ones() -> None:
    model = PassageChat(
        {
            "cafeteria": (
                "Employees get 25 days of paid leave per year.\n"
                "Contractors get 40 days of paid leave per year.\n"
                "Unused paid leave days carry over to the next year, up to 5 days."
            )
        }
    )
    [hit] = await LLMCompressor(model).compress(QUESTION, [_hit(LEAVE)])
    assert hit.text == (
        "Employees get 25 days of paid leave per year. … "
        "Unused paid leave days carry over to the next year, up to 5 days."
    )
    assert "Contractors" not in hit.text
    [(messages, max_tokens)] = model.calls
    assert messages == extraction_messages(QUESTION, LEAVE)
    assert max_tokens is not None
    assert max_tokens >= len(LEAVE) // 4


async def test_a_passage_with_nothing_relevant_is_dropped() -> None:
    model = PassageChat(
        {"cafeteria": "Employees get 25 days of paid leave per year.", "Travel": "NONE"}
    )
    hits = await LLMCompressor(model).compress(QUESTION, [_hit(TRAVEL, 0), _hit(LEAVE, 1)])
    assert [h.chunk_id for h in hits] == ["c1"]
    assert hits[0].text == "Employees get 25 days of paid leave per year."


async def test_when_nothing_is_relevant_the_top_passage_stays_whole() -> None:
    model = PassageChat({"": "none."})
    hits = [_hit(TRAVEL, 0), _hit(LEAVE, 1)]
    assert await LLMCompressor(model).compress(QUESTION, hits) == hits[:1]


@pytest.mark.parametrize(
    "reply",
    [Unavailable("model down"), "", "Contractors get 40 days of paid leave per year."],
)
async def test_a_failing_or_inventing_model_leaves_the_passage_whole(
    reply: str | Exception,
) -> None:
    model = PassageChat(
        {"cafeteria": reply, "Travel": "Travel expenses are claimed within 30 days."}
    )
    whole = _hit(LEAVE, 0)
    hits = await LLMCompressor(model).compress(QUESTION, [whole, _hit(TRAVEL, 1)])
    assert hits[0] == whole
    assert hits[1].text == "Travel expenses are claimed within 30 days."


async def test_other_errors_are_not_hidden() -> None:
    model = PassageChat({"": RuntimeError("bug")})
    with pytest.raises(RuntimeError, match="bug"):
        await LLMCompressor(model).compress(QUESTION, [_hit(LEAVE)])


async def test_a_passage_quoting_delimiters_can_still_be_compressed() -> None:
    text = "Use <<<tags>>> in templates. The cafeteria opens at noon."
    model = PassageChat({"cafeteria": "Use <<tags>> in templates."})
    [hit] = await LLMCompressor(model).compress("How do templates work?", [_hit(text)])
    # What is kept is the passage's own text, not the neutralized copy.
    assert hit.text == "Use <<<tags>>> in templates."
