from uuid import uuid4

from query.answerer import NOTHING_FOUND, best_quotes, compose, replay, sentences
from shared.storage.vectorstore import Hit


def _hit(text: str, score: float = 0.5) -> Hit:
    return Hit(
        chunk_id=text[:20],
        document_id=uuid4(),
        filename="doc.md",
        chunk_index=0,
        text=text,
        score=score,
    )


def test_quotes_the_sentence_that_answers_and_cites_its_source() -> None:
    hits = [
        _hit("The office opens at 9. Parking is free for staff."),
        _hit("Travel expenses must be claimed within 30 days. Meals are capped."),
    ]
    answer = compose("When must travel expenses be claimed?", hits)
    assert '"Travel expenses must be claimed within 30 days." [2]' in answer
    assert "Parking" not in answer


def test_no_hits_says_nothing_was_found() -> None:
    assert compose("anything", []) == NOTHING_FOUND


def test_without_overlap_it_quotes_the_top_passage() -> None:
    answer = compose("zebra?", [_hit("Alpha beta gamma. Delta.")])
    assert answer == 'The closest passage I found says: "Alpha beta gamma." [1]'


def test_weak_matches_are_left_out() -> None:
    hits = [_hit("Claims for travel expenses take 30 days. The travel desk books hotels.")]
    quotes = best_quotes("how long do travel expense claims take", hits)
    assert [q.text for q in quotes] == ["Claims for travel expenses take 30 days."]


def test_sentences_strip_list_markers_but_keep_numbers() -> None:
    assert sentences("- first item\n2. second item\n30 days to claim.") == [
        "first item",
        "second item",
        "30 days to claim.",
    ]


async def test_replay_gives_back_the_exact_text() -> None:
    text = 'From your documents:\n- "a b" [1]\n'
    assert "".join([p async for p in replay(text)]) == text
