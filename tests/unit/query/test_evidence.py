"""The evidence reader with the bundled cross-encoder, run for real."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from query.answerer import AnswerPolicy, compose
from query.evidence import EvidenceReader, question_parts
from shared.adapters.onnx_models import MS_MARCO_MINILM_L12, OnnxTextModel
from shared.config import Settings
from shared.storage.vectorstore import Hit

POLICY = (Path(__file__).parents[3] / "samples" / "expense-policy.md").read_text()
DEFAULT_GATE = Settings().answer_min_relevance


@pytest.fixture(scope="module")
def reader() -> EvidenceReader:
    return EvidenceReader(OnnxTextModel.load(MS_MARCO_MINILM_L12), max_pairs=16)


def _hits() -> list[Hit]:
    # The sample policy as three passages, the way chunking would cut it.
    sections = POLICY.split("\n## ")
    chunks = [sections[0], "## " + "\n## ".join(sections[1:3]), "## " + "\n## ".join(sections[3:])]
    return [
        Hit(f"c{i}", uuid.uuid4(), "expense-policy.md", i, text, 0.5)
        for i, text in enumerate(chunks)
    ]


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        (
            "How many days do I have to submit an expense report, and who approves it?",
            ("How many days do I have to submit an expense report", "who approves it"),
        ),
        ("What is the capital of France?", ()),
        ("Where and when?", ()),
    ],
)
def test_question_parts(question: str, parts: tuple[str, ...]) -> None:
    assert question_parts(question) == parts


def test_the_sentence_that_answers_scores_best_and_headings_are_not_read(
    reader: EvidenceReader,
) -> None:
    evidence = reader.read_now("what's the per diem for meals in london", _hits())
    assert evidence.scored[0].unit.text.startswith("While travelling you may claim a per diem")
    assert all(c.unit.kind != "heading" for c in evidence.scored)
    assert evidence.relevant(DEFAULT_GATE)


def test_the_model_reads_at_most_max_pairs(reader: EvidenceReader) -> None:
    evidence = reader.read_now("How do corporate cards work?", _hits())
    assert 0 < len(evidence.scored) <= 16
    compound = reader.read_now("When are cards issued, and who reconciles statements?", _hits())
    assert len(compound.parts) == 2
    assert len(compound.scored) <= 16 // 3


def test_an_off_topic_question_is_below_the_default_gate(reader: EvidenceReader) -> None:
    evidence = reader.read_now("What is the capital of France?", _hits())
    assert not evidence.relevant(DEFAULT_GATE), evidence.best


def test_both_parts_of_a_compound_question_are_answered(reader: EvidenceReader) -> None:
    hits = _hits()
    question = "How many days do I have to submit an expense report, and who approves it?"
    evidence = reader.read_now(question, hits)
    answer = compose(evidence, hits, AnswerPolicy(DEFAULT_GATE, max_quotes=4))
    assert "within 30 calendar days of the purchase." in answer
    assert "Your direct manager approves reports up to EUR 2,500." in answer
    assert "**" not in answer
