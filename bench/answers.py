"""#8 answers: what the relevance gate and the offline answerer add to each
answer. The bundled cross-encoder scores the question against the sentences
of the ten candidate passages (``ANSWER_SCORED_SENTENCES`` pairs, batched);
the baseline, timed alternately in the same run, is the ``cross-encoder``
reranker reading the same ten passages, a cost the configuration table of
docs/quality.md already reports.

Passages are real: the 120 pages of ``eval/pydocs`` cut into 800-character
chunks, the ten sharing most rare words with each of the set's questions (the
chunks are for the reader to read, so a crude ranking is enough). No services
are needed.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections import Counter
from pathlib import Path

from bench.common import Context
from bench.results import Figure, summary_ms
from query.answerer import AnswerPolicy, compose
from query.evidence import EvidenceReader
from query.rerank.cross_encoder import CrossEncoderReranker
from shared.adapters.onnx_models import MS_MARCO_MINILM_L12, OnnxTextModel
from shared.config import Settings
from shared.storage.vectorstore import Hit
from shared.text import terms

SET = Path(__file__).resolve().parents[1] / "eval" / "pydocs"
CHUNK_CHARS = 800
PASSAGES = 10
TARGET_P50_MS = 150.0


def _chunks() -> list[Hit]:
    hits: list[Hit] = []
    for path in sorted((SET / "docs").glob("*.md")):
        text, document = path.read_text(encoding="utf-8"), uuid.uuid4()
        for n, start in enumerate(range(0, len(text), CHUNK_CHARS)):
            piece = text[start : start + CHUNK_CHARS]
            hits.append(Hit(f"{path.name}:{n}", document, path.name, n, piece, 0.0))
    return hits


def _questions() -> list[str]:
    lines = (SET / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def _top(question: str, chunks: list[Hit], words: list[set[str]], df: Counter[str]) -> list[Hit]:
    wanted = set(terms(question))
    score = [sum(math.log(len(chunks) / df[w]) for w in wanted & ws) for ws in words]
    order = sorted(range(len(chunks)), key=lambda i: -score[i])[:PASSAGES]
    return [chunks[i] for i in order]


def _measure(questions: list[str], quick: bool) -> tuple[list[float], list[float], int]:
    settings = Settings()
    model = OnnxTextModel.load(MS_MARCO_MINILM_L12)
    reader = EvidenceReader(model, max_pairs=settings.answer_scored_sentences)
    reranker = CrossEncoderReranker(model, settings.rerank_max_chars)
    policy = AnswerPolicy(settings.answer_min_relevance, settings.answer_max_quotes)
    chunks = _chunks()
    words = [set(terms(c.text)) for c in chunks]
    df: Counter[str] = Counter(w for ws in words for w in ws)
    answer_s: list[float] = []
    rerank_s: list[float] = []
    declined = 0
    for question in questions[: 30 if quick else None]:
        hits = _top(question, chunks, words, df)
        # Alternated, question by question, so both see the same machine.
        started = time.perf_counter()
        evidence = reader.read_now(question, hits)
        text = compose(evidence, hits, policy)
        answer_s.append(time.perf_counter() - started)
        declined += not evidence.relevant(policy.min_relevance)
        started = time.perf_counter()
        reranker.logits(question, [h.in_context for h in hits])
        rerank_s.append(time.perf_counter() - started)
        assert text
    return answer_s, rerank_s, declined


async def run(ctx: Context) -> list[Figure]:
    answer_s, rerank_s, declined = await asyncio.to_thread(_measure, _questions(), ctx.quick)
    answer, rerank = summary_ms(answer_s), summary_ms(rerank_s)
    return [
        Figure(
            name="8. answer: gate + offline answer, p50 (10 passages)",
            target=f"<= {TARGET_P50_MS:.0f} ms",
            measured=answer["p50"],
            unit="ms",
            baseline=rerank["p50"],
            baseline_label="cross-encoder rerank of the 10 passages",
            met=answer["p50"] <= TARGET_P50_MS,
            command="python -m bench --only answers",
            details={"answer": answer, "rerank": rerank, "declined": declined},
        )
    ]
