import uuid
from collections.abc import Sequence

import pytest

from query.rerank.mmr import MMRReranker, mmr_order
from query.retrieval import Owner
from shared.adapters.embedding import HashingEmbedder
from shared.storage.vectorstore import Hit


class TableEmbedder:
    """Vectors looked up by text, so the arithmetic can be checked by hand."""

    name = "table"
    dim = 3

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        # Passages arrive under their title and headings: look up the text itself.
        return [self.table[t.split("\n\n", 1)[-1]] for t in texts]

    async def embed_query(self, text: str) -> list[float]:
        return self.table[text]


# Cosines to Q: A 0.8, A2 0.6, B 0.28. A and A2 are near-duplicates (0.96);
# B points elsewhere (cos to A 0.224, to A2 0.168).
TABLE = {
    "Q": [1.0, 0.0, 0.0],
    "A": [0.8, 0.6, 0.0],
    "A2": [0.6, 0.8, 0.0],
    "B": [0.28, 0.0, 0.96],
}


def _hits(*texts: str) -> list[Hit]:
    return [Hit(t, uuid.uuid4(), "f.md", n, t, 0.1) for n, t in enumerate(texts)]


async def test_lambda_one_is_pure_relevance_order() -> None:
    reranker = MMRReranker(TableEmbedder(TABLE), lambda_=1.0)
    ranked = await reranker.rerank("Q", _hits("B", "A2", "A"), k=3)
    assert [h.text for h in ranked] == ["A", "A2", "B"]
    assert [h.score for h in ranked] == [0.8, 0.6, 0.28]


async def test_a_near_duplicate_gives_way_to_a_different_passage() -> None:
    # lambda 0.5, hand-checked:
    #   pick 1: A 0.5*0.8 = 0.4 (A2 0.3, B 0.14)
    #   pick 2: A2 0.5*0.6 - 0.5*0.96 = -0.18; B 0.5*0.28 - 0.5*0.224 = 0.028 -> B
    #   pick 3: A2 0.3 - 0.5*max(0.96, 0.168) = -0.18
    reranker = MMRReranker(TableEmbedder(TABLE), lambda_=0.5)
    ranked = await reranker.rerank("Q", _hits("A", "A2", "B"), k=3)
    assert [h.text for h in ranked] == ["A", "B", "A2"]
    assert [h.score for h in ranked] == [0.4, 0.028, -0.18]


async def test_k_limits_and_metadata_is_kept() -> None:
    hits = _hits("A", "A2", "B")
    ranked = await MMRReranker(TableEmbedder(TABLE), lambda_=0.5).rerank("Q", hits, k=2)
    assert [h.chunk_id for h in ranked] == ["A", "B"]
    assert ranked[1].chunk_index == hits[2].chunk_index
    assert ranked[1].document_id == hits[2].document_id


async def test_no_candidates_or_no_room() -> None:
    reranker = MMRReranker(TableEmbedder(TABLE), lambda_=0.5)
    assert await reranker.rerank("Q", [], k=3) == []
    assert await reranker.rerank("Q", _hits("A"), k=0) == []


def test_ties_go_to_the_earlier_candidate() -> None:
    order = mmr_order([1.0, 0.0], [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]], 1.0, 3)
    assert [i for i, _ in order] == [0, 1, 2]


def test_unnormalised_and_zero_vectors_are_handled() -> None:
    order = mmr_order([2.0, 0.0], [[0.0, 0.0], [3.0, 0.0]], 1.0, 2)
    assert order == [(1, pytest.approx(1.0)), (0, 0.0)]


def test_lambda_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="lambda_"):
        MMRReranker(TableEmbedder(TABLE), lambda_=1.5)


async def test_with_real_text_the_second_pick_is_not_a_copy_of_the_first() -> None:
    question = "How many days of paid leave do employees get per year?"
    texts = [
        "Employees get 25 days of paid leave per year. Unused days carry over to the next year.",
        "Employees get 25 days of paid leave per year. Unused days carry over into the next year.",
        "Paid leave for contractors: none; contractors' days off are unpaid.",
    ]
    embedder = HashingEmbedder(384)
    by_relevance = await MMRReranker(embedder, lambda_=1.0).rerank(question, _hits(*texts), 2)
    assert [h.text for h in by_relevance] == texts[:2]
    diverse = await MMRReranker(embedder, lambda_=0.5).rerank(question, _hits(*texts), 2)
    assert [h.text for h in diverse] == [texts[0], texts[2]]


class Store:
    """Stored vectors of one tenant, as the vector store returns them."""

    def __init__(self, tenant_id: uuid.UUID, table: dict[str, list[float]]) -> None:
        self.tenant_id = tenant_id
        self.table = table
        self.asked: list[list[str]] = []

    async def vectors(self, tenant_id: uuid.UUID, ids: Sequence[str]) -> dict[str, list[float]]:
        self.asked.append(list(ids))
        if tenant_id != self.tenant_id:
            return {}
        return {i: self.table[i] for i in ids if i in self.table}


class CountingEmbedder(TableEmbedder):
    def __init__(self, table: dict[str, list[float]]) -> None:
        super().__init__(table)
        self.embedded: list[str] = []

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.embedded += [t.split("\n\n", 1)[-1] for t in texts]
        return await super().embed_documents(texts)


async def test_stored_vectors_are_used_and_only_missing_ones_embedded() -> None:
    owner = Owner(uuid.uuid4(), uuid.uuid4())
    # The store holds A and B (A2 was deleted since retrieval); the stored
    # vectors differ from what the embedder would say, to tell them apart:
    # stored, A is far from the question and B near it.
    store = Store(owner.tenant_id, {"A": [0.0, 0.0, 1.0], "B": [1.0, 0.0, 0.0]})
    embedder = CountingEmbedder(TABLE)
    reranker = MMRReranker(embedder, lambda_=1.0, stored=store)
    ranked = await reranker.rerank("Q", _hits("A", "A2", "B"), k=3, owner=owner)
    assert [h.text for h in ranked] == ["B", "A2", "A"]
    assert [h.score for h in ranked] == [1.0, 0.6, 0.0]
    assert store.asked == [["A", "A2", "B"]]
    assert embedder.embedded == ["A2"]


async def test_without_an_owner_every_passage_is_embedded() -> None:
    store = Store(uuid.uuid4(), {"A": [0.0, 0.0, 1.0]})
    embedder = CountingEmbedder(TABLE)
    ranked = await MMRReranker(embedder, lambda_=1.0, stored=store).rerank("Q", _hits("B", "A"), 2)
    assert [h.text for h in ranked] == ["A", "B"]
    assert store.asked == []
    assert embedder.embedded == ["B", "A"]
