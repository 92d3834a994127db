from uuid import uuid4

from query.answerer import (
    NOT_FOUND,
    NOT_FOUND_WITH_SOURCES,
    AnswerPolicy,
    compose,
    not_found,
    replay,
)
from query.evidence import Candidate, Evidence
from query.sentences import passage_units
from shared.storage.vectorstore import Hit

POLICY = AnswerPolicy(min_relevance=-5.0, max_quotes=4, margin=3.0)

EXPENSES = """## Submitting expenses

Submit every expense report in **Ledgerly** within **30 calendar days** of the
purchase. Reports submitted later than 60 days are rejected.

Your direct manager approves reports up to **EUR 2,500**. Reports above that
amount also need approval from the budget owner.
"""
TRAVEL = """## Meals and per diem

While travelling you may claim a per diem of **EUR 60 per day** for meals.
It is halved on the days you leave and return.
"""


def _hit(text: str, filename: str = "expense-policy.md") -> Hit:
    return Hit(uuid4().hex, uuid4(), filename, 0, text, 0.5)


def _evidence(
    hits: list[Hit],
    scores: dict[str, float],
    parts: tuple[str, ...] = (),
    part_scores: dict[str, tuple[float, ...]] | None = None,
) -> Evidence:
    """Evidence as the reader would build it, the model's scores given by
    the start of each unit's text (units not named were not scored)."""
    units = tuple(tuple(passage_units(h.text)) for h in hits)
    scored = [
        Candidate(
            n,
            i,
            unit,
            score=score,
            part_scores=(part_scores or {}).get(start, tuple(-9.0 for _ in parts)),
        )
        for n, passage in enumerate(units, start=1)
        for i, unit in enumerate(passage)
        for start, score in scores.items()
        if unit.text.startswith(start)
    ]
    scored.sort(key=lambda c: -c.rank_score)
    return Evidence("q", parts, units, tuple(scored))


def test_quotes_whole_sentences_under_their_heading_without_markup() -> None:
    hits = [_hit(EXPENSES)]
    evidence = _evidence(hits, {"Submit every": 4.0, "Your direct": -7.0})
    answer = compose(evidence, hits, POLICY)
    assert answer == (
        "From your documents:\n"
        '- expense policy > Submitting expenses: "Submit every expense report in Ledgerly'
        ' within 30 calendar days of the purchase." [1]'
    )


def test_a_heading_is_never_an_answer_line() -> None:
    hits = [_hit(TRAVEL)]
    evidence = _evidence(hits, {"While travelling": 2.0})
    answer = compose(evidence, hits, POLICY)
    assert '"While travelling you may claim a per diem of EUR 60 per day for meals.' in answer
    assert '"Meals and per diem' not in answer


def test_a_sentence_that_leans_on_the_next_keeps_it() -> None:
    hits = [_hit(TRAVEL)]
    evidence = _evidence(hits, {"While travelling": 2.0})
    answer = compose(evidence, hits, POLICY)
    assert "for meals. It is halved on the days you leave and return." in answer


def test_each_part_of_a_compound_question_gets_its_sentence() -> None:
    hits = [_hit(EXPENSES)]
    evidence = _evidence(
        hits,
        {"Submit every": 5.0, "Your direct": -4.5},
        parts=("how many days", "who approves it"),
        part_scores={"Submit every": (6.0, -6.0), "Your direct": (-8.0, 3.0)},
    )
    answer = compose(evidence, hits, AnswerPolicy(min_relevance=-5.0, max_quotes=4, margin=1.0))
    # One passage: its sentences in document order, a gap marked between them.
    assert "of the purchase. … Your direct manager approves reports up to EUR 2,500." in answer


def test_quotes_follow_passage_rank_and_the_limit() -> None:
    hits = [_hit(TRAVEL, "travel.md"), _hit(EXPENSES)]
    evidence = _evidence(
        hits, {"Submit every": 4.0, "Reports submitted": 3.9, "While travelling": 2.8}
    )
    answer = compose(evidence, hits, AnswerPolicy(min_relevance=-5.0, max_quotes=3))
    lines = answer.splitlines()[1:]
    # The best sentences are in passage 2, but passage 1 is quoted first.
    assert lines[0].endswith('per day for meals." [1]')
    assert lines[1].endswith('Reports submitted later than 60 days are rejected." [2]')
    assert "It is halved" not in answer  # three sentences, the limit


def test_nothing_relevant_enough_is_not_found() -> None:
    hits = [_hit(EXPENSES)]
    evidence = _evidence(hits, {"Submit every": -6.0})
    assert compose(evidence, hits, POLICY) == NOT_FOUND_WITH_SOURCES
    assert compose(_evidence([], {}), [], POLICY) == NOT_FOUND
    assert not_found([]) == NOT_FOUND


async def test_replay_gives_back_the_exact_text() -> None:
    text = 'From your documents:\n- "a b" [1]\n'
    assert "".join([p async for p in replay(text)]) == text
