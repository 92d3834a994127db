from collections.abc import AsyncIterator

import pytest

from query.citations import checked_citations, cited_numbers, without_unknown_citations


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Lima [1]. Quito [7].", "Lima [1]. Quito."),
        ("Both [2, 9] and [3][1].", "Both [2] and [3][1]."),
        ("Glued [4][1] and [1][4].", "Glued [1] and [1]."),
        ("A range [1-5].", "A range [1, 2, 3]."),
        ("Code items[7] and [x] stay.", "Code items[7] and [x] stay."),
        ("All known [1] [2-3].", "All known [1] [2-3]."),
    ],
)
def test_citations_of_unknown_sources_are_removed(text: str, expected: str) -> None:
    assert without_unknown_citations(text, 3) == expected


async def _pieces(text: str, size: int) -> AsyncIterator[str]:
    for i in range(0, len(text), size):
        yield text[i : i + size]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 1000])
async def test_a_stream_is_checked_as_the_whole_text_would_be(size: int) -> None:
    text = "Use X [1]. Also Y [7]. Both [2, 9]. items[7] ok [1-3] [x] end ["
    pieces = [p async for p in checked_citations(_pieces(text, size), 2)]
    assert "".join(pieces) == without_unknown_citations(text, 2)
    assert "".join(pieces) == "Use X [1]. Also Y. Both [2]. items[7] ok [1, 2] [x] end ["
    assert all(pieces)


async def test_the_stream_stays_word_by_word() -> None:
    words = ["Lima ", "is ", "the ", "capital ", "[1]", "."]
    pieces = [p async for p in checked_citations(_pieces("".join(words), 5), 1)]
    # Only a possible citation (with the space before it) is held back.
    assert len(pieces) >= 5


async def test_closing_the_checked_stream_closes_its_source() -> None:
    closed = False

    async def source() -> AsyncIterator[str]:
        nonlocal closed
        try:
            while True:
                yield "word "
        finally:
            closed = True

    checked = checked_citations(source(), 3)
    assert await anext(checked) == "word"
    await checked.aclose()
    assert closed
