import math

from shared.adapters.embedding import HashingEmbedder
from shared.text import terms


def test_vectors_are_unit_length_and_deterministic() -> None:
    embedder = HashingEmbedder(64)
    first, again = embedder.embed(["Travel expenses are reimbursed"] * 2)
    assert len(first) == 64
    assert math.isclose(math.sqrt(sum(x * x for x in first)), 1.0)
    assert first == again


def test_shared_vocabulary_scores_higher_than_unrelated_text() -> None:
    embedder = HashingEmbedder(384)
    query, related, unrelated = embedder.embed(
        ["travel expenses claim", "claim your travel expenses within 30 days", "the cafeteria menu"]
    )

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(query, related) > 0.3
    assert cosine(query, related) > cosine(query, unrelated) + 0.3


def test_text_without_content_words_embeds_to_zero() -> None:
    assert HashingEmbedder(16).embed_one("the and of") == [0.0] * 16


def test_terms_drop_stopwords_and_punctuation() -> None:
    assert terms("What is the Policy, for travel?") == ["policy", "travel"]
