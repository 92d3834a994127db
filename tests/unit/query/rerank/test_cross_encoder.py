"""The bundled ms-marco MiniLM cross-encoder, run for real (no mocks)."""

from __future__ import annotations

import uuid

import pytest

from query.rerank.cross_encoder import CrossEncoderReranker
from shared.adapters.onnx_models import MS_MARCO_MINILM_L12, OnnxTextModel
from shared.storage.vectorstore import Hit


@pytest.fixture(scope="module")
def model() -> OnnxTextModel:
    return OnnxTextModel.load(MS_MARCO_MINILM_L12)


@pytest.fixture(scope="module")
def reranker(model: OnnxTextModel) -> CrossEncoderReranker:
    return CrossEncoderReranker(model)


def hits(*texts: str) -> list[Hit]:
    document = uuid.uuid4()
    return [
        Hit(
            chunk_id=f"c{i}",
            document_id=document,
            filename="policy.md",
            chunk_index=i,
            text=text,
            score=1.0 - i / 100,
        )
        for i, text in enumerate(texts)
    ]


# Hand-checked: exactly one passage answers, the others share its words.
RANKINGS = [
    (
        "How many days do I have to submit a travel expense claim?",
        [
            "Travel bookings must be made through the approved agency portal.",
            "The travel policy covers economy flights for trips under six hours.",
            "Claims for lost luggage are handled by the airline, not by the company.",
            "Expense claims for business travel must be submitted within 30 days of "
            "returning, with receipts attached.",
            "Submit your timesheet every Friday before 5pm.",
        ],
        3,
    ),
    (
        "How do I reset my VPN password?",
        [
            "The VPN client is installed on all company laptops by default.",
            "Password rules: at least 14 characters, changed every 90 days.",
            "VPN outages are announced on the status page.",
            "Reset the printer by holding the power button for ten seconds.",
            "To reset your VPN password, open the self-service portal, choose "
            "'Remote access' and follow the emailed link.",
        ],
        4,
    ),
    (
        "What is the maximum hotel rate per night in London?",
        [
            "London office address: 1 Example Street, EC1.",
            "Book hotels through the travel portal to get the corporate rate.",
            "Hotels in London are reimbursed up to 220 GBP per night, breakfast included.",
            "The maximum mileage allowance is 0.45 GBP per mile.",
        ],
        2,
    ),
]


@pytest.mark.parametrize(("question", "passages", "answer"), RANKINGS)
async def test_the_answer_comes_first(
    reranker: CrossEncoderReranker, question: str, passages: list[str], answer: int
) -> None:
    candidates = hits(*passages)
    ranked = await reranker.rerank(question, candidates, k=len(passages))
    assert ranked[0].chunk_id == candidates[answer].chunk_id
    assert ranked[0].score > 0.9
    assert all(hit.score < 0.1 for hit in ranked[1:])


async def test_k_is_respected_and_scores_descend(reranker: CrossEncoderReranker) -> None:
    question, passages, _ = RANKINGS[0]
    candidates = hits(*passages)
    for k in (1, 3, 5, 10):
        ranked = await reranker.rerank(question, candidates, k=k)
        assert len(ranked) == min(k, len(candidates))
        scores = [hit.score for hit in ranked]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= score <= 1.0 and round(score, 4) == score for score in scores)
    assert await reranker.rerank(question, candidates, k=0) == []
    assert await reranker.rerank(question, [], k=5) == []


async def test_only_the_score_changes(reranker: CrossEncoderReranker) -> None:
    question, passages, _ = RANKINGS[1]
    candidates = hits(*passages)
    ranked = await reranker.rerank(question, candidates, k=len(candidates))
    by_id = {hit.chunk_id: hit for hit in candidates}
    for hit in ranked:
        original = by_id[hit.chunk_id]
        assert hit.text == original.text
        assert hit.document_id == original.document_id
        assert hit.chunk_index == original.chunk_index


async def test_a_score_does_not_depend_on_the_other_candidates(
    reranker: CrossEncoderReranker,
) -> None:
    question, passages, answer = RANKINGS[2]
    candidates = hits(*passages)
    together = await reranker.rerank(question, candidates, k=1)
    alone = await reranker.rerank(question, [candidates[answer]], k=1)
    assert together == alone


async def test_reproduces_the_reference_model(reranker: CrossEncoderReranker) -> None:
    # The model card's example: logits 9.45 and -11.16 for the fp32 model.
    logits = reranker.logits(
        "How many people live in Berlin?",
        [
            "Berlin has a population of 3,520,031 registered inhabitants in an area "
            "of 891.82 square kilometers.",
            "New York City is famous for the Metropolitan Museum of Art.",
        ],
    )
    assert logits == pytest.approx([9.45, -11.16], abs=0.5)


async def test_long_passages_and_questions_are_truncated(
    model: OnnxTextModel, reranker: CrossEncoderReranker
) -> None:
    long_passage = "The cafeteria menu changes every week. " * 600
    answer = "Expense claims must be submitted within 30 days of the trip."
    question = "How long do I have to submit an expense claim?"
    ranked = await reranker.rerank(question, hits(long_passage, answer), k=2)
    assert ranked[0].text == answer

    # Past 512 tokens even without a character budget, and with a huge question.
    unbounded = CrossEncoderReranker(model, max_chars=1_000_000)
    ranked = await unbounded.rerank(question * 200, hits(long_passage, answer), k=2)
    assert len(ranked) == 2


async def test_the_character_budget_decides_what_the_model_reads(model: OnnxTextModel) -> None:
    question = "How long do I have to submit an expense claim?"
    buried = "Our offices are open on weekdays. " * 20 + (
        "Expense claims must be submitted within 30 days of the trip."
    )
    assert len(buried) > 680
    [wide] = await CrossEncoderReranker(model, max_chars=1200).rerank(question, hits(buried), 1)
    [narrow] = await CrossEncoderReranker(model, max_chars=600).rerank(question, hits(buried), 1)
    # Buried under filler the answer still counts; cut off, nothing is left.
    assert wide.score > 0.2
    assert narrow.score < 0.01


def test_the_budget_must_be_positive(model: OnnxTextModel) -> None:
    with pytest.raises(ValueError, match="max_chars"):
        CrossEncoderReranker(model, max_chars=0)
