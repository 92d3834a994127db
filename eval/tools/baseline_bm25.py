"""A lexical reference for the labelled set: BM25 over ~800-character chunks.

Not the system's own retrieval: a quick check, with the ``bm25s`` package,
that the questions are neither trivial for keyword search (they would copy
the documents' wording) nor impossible. Chunks are cut the way ingestion cuts
Markdown: a section per heading (never inside a code fence), each section
split by LangChain's Markdown-aware recursive splitter.

    pip install bm25s PyStemmer langchain-text-splitters
    python eval/tools/baseline_bm25.py [--dataset eval/pydocs] [--size 800] [--overlap 120]
    python eval/tools/baseline_bm25.py --misses     # also list the questions BM25 misses

Only the answerable questions are scored: an unanswerable one has no gold
passage to rank (deciding to decline it is the answerer's job, not retrieval's).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import bm25s
import Stemmer
from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

from ragstream.evaluation.dataset import (
    Dataset,
    Question,
    document_relevant,
    load_dataset,
    passage_relevant,
    verify,
)
from ragstream.evaluation.metrics import Outcome, summarise

DEFAULT_DATASET = Path(__file__).resolve().parents[1] / "pydocs"
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
DEPTH = 10


def sections(text: str) -> list[str]:
    """Markdown split before each ATX heading that is not inside a code fence."""
    parts: list[list[str]] = [[]]
    fence = ""
    for line in text.splitlines():
        if fence:
            if line.strip().startswith(fence):
                fence = ""
        elif opening := _FENCE.match(line):
            fence = opening.group(1)
        elif _HEADING.match(line) and any(x.strip() for x in parts[-1]):
            parts.append([])
        parts[-1].append(line)
    return [body for part in parts if (body := "\n".join(part).strip())]


def chunks(dataset: Dataset, size: int, overlap: int) -> list[tuple[str, str]]:
    splitter = RecursiveCharacterTextSplitter.from_language(
        Language.MARKDOWN, chunk_size=size, chunk_overlap=overlap
    )
    return [
        (path.name, piece)
        for path in dataset.documents
        for section in sections(dataset.text(path.name))
        for piece in splitter.split_text(section)
        if piece.strip()
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--size", type=int, default=800, help="chunk size in characters")
    parser.add_argument("--overlap", type=int, default=120, help="chunk overlap in characters")
    parser.add_argument("--misses", action="store_true", help="list questions missed at rank 1")
    args = parser.parse_args()

    labelled = load_dataset(args.dataset)
    problems = verify(labelled)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    dataset = labelled.answerable()
    corpus = chunks(dataset, args.size, args.overlap)
    # A gold passage no chunk holds could never be found: the set would be wrong.
    for question in dataset.questions:
        for gold in question.gold:
            one = Question(question.id, question.question, (gold,))
            if not any(passage_relevant(one, name, text) for name, text in corpus):
                print(f"{question.id}: no chunk holds the quote from {gold.doc}", file=sys.stderr)
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(
            [text for _, text in corpus], stopwords="en", stemmer=stemmer, show_progress=False
        ),
        show_progress=False,
    )
    queries = bm25s.tokenize(
        [q.question for q in dataset.questions],
        stopwords="en",
        stemmer=stemmer,
        show_progress=False,
    )
    ranked, _ = retriever.retrieve(queries, k=DEPTH, show_progress=False)

    outcomes: list[Outcome] = []
    for question, row in zip(dataset.questions, ranked, strict=True):
        hits = [corpus[int(i)] for i in row]
        outcome = Outcome(
            passages=[passage_relevant(question, name, text) for name, text in hits],
            documents=[(name, document_relevant(question, name)) for name, _ in hits],
            latency=0.0,
            n_gold=len(question.gold),
            n_gold_documents=len(question.gold_documents),
        )
        outcomes.append(outcome)
        if args.misses and not outcome.documents[0][1]:
            top = hits[0][0]
            print(f"{question.id} doc miss (top: {top}; gold: {question.gold_documents[0]})")
    summary = summarise(outcomes)

    size = sum(p.stat().st_size for p in dataset.documents)
    print(
        f"{len(dataset.questions)} answerable questions "
        f"({len(labelled.questions) - len(dataset.questions)} unanswerable left out), "
        f"{len(dataset.documents)} documents "
        f"({size / 1e6:.2f} MB), {len(corpus)} chunks of <= {args.size} characters"
    )
    print(f"{'level':<10}{'hit@1':>8}{'hit@5':>8}{'MRR':>8}{'nDCG@10':>9}")
    for label, prefix in (("passage", ""), ("document", "doc_")):
        print(
            f"{label:<10}{summary[prefix + 'hit@1']:>8.3f}{summary[prefix + 'hit@5']:>8.3f}"
            f"{summary[prefix + 'mrr']:>8.3f}{summary[prefix + 'ndcg@10']:>9.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
