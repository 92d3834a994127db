"""A labelled retrieval set on disk, and how a retrieved passage is judged.

A set is a folder::

    docs/              the corpus: every file in it is uploaded
    questions.jsonl    one question a line:
                       {"id": "q001", "question": "...",
                        "gold": [{"doc": "json.md", "quote": "..."}], "notes": "..."}

Each gold entry names a document and quotes, exactly, the passage of it that
answers the question. A retrieved passage is relevant when it comes from a
gold document and holds enough of a gold quote (``passage_relevant``); a
retrieved document is relevant when it is a gold document
(``document_relevant``).

Pure standard library, so the set can be loaded and checked without the
running system.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import Any

QUESTIONS_FILE = "questions.jsonl"
DOCS_DIR = "docs"
# How much of a quote a chunk must hold: its first or its last this many
# characters (whitespace-normalised), so a quote that straddles a chunk
# boundary still counts for the chunk holding most of it.
ANCHOR_CHARS = 40


class DatasetError(ValueError):
    """The set's files cannot be read as a labelled set."""


@dataclass(frozen=True)
class Gold:
    """A gold passage: where the answer is, quoted."""

    doc: str
    """The document's file name, as uploaded (``json.md``)."""
    quote: str
    """An exact substring of that document that answers the question."""


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    gold: tuple[Gold, ...]
    notes: str = ""

    @property
    def gold_documents(self) -> tuple[str, ...]:
        """The distinct gold documents, in the order the gold lists them."""
        return tuple(dict.fromkeys(g.doc for g in self.gold))


@dataclass(frozen=True)
class Dataset:
    name: str
    root: Path
    documents: list[Path]
    """The corpus, sorted by file name."""
    questions: tuple[Question, ...]
    _texts: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def head(self, n: int) -> Dataset:
        """The same corpus with only the first ``n`` questions."""
        return replace(self, questions=self.questions[:n], _texts=self._texts)

    def document(self, filename: str) -> Path | None:
        return next((p for p in self.documents if p.name == filename), None)

    def text(self, filename: str) -> str:
        """A document's text (UTF-8), read once."""
        if filename not in self._texts:
            path = self.document(filename)
            if path is None:
                raise KeyError(filename)
            self._texts[filename] = path.read_text(encoding="utf-8")
        return self._texts[filename]


def load_dataset(root: Path) -> Dataset:
    """Read ``root/docs/*`` and ``root/questions.jsonl``; raise ``DatasetError``
    if either is missing or a line is not a well-formed question."""
    docs_dir = root / DOCS_DIR
    questions_file = root / QUESTIONS_FILE
    if not docs_dir.is_dir():
        raise DatasetError(f"{docs_dir}: no such folder")
    if not questions_file.is_file():
        raise DatasetError(f"{questions_file}: no such file")
    documents = sorted(
        (p for p in docs_dir.iterdir() if p.is_file() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    questions: list[Question] = []
    lines = questions_file.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            questions.append(_question(json.loads(line)))
        except (json.JSONDecodeError, DatasetError) as exc:
            raise DatasetError(f"{questions_file.name} line {number}: {exc}") from exc
    return Dataset(root.resolve().name, root, documents, tuple(questions))


def _question(raw: Any) -> Question:
    if not isinstance(raw, dict):
        raise DatasetError("not a JSON object")
    for key in ("id", "question"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise DatasetError(f"{key!r} must be a non-empty string")
    gold = raw.get("gold")
    if not isinstance(gold, list) or not gold:
        raise DatasetError("'gold' must be a non-empty list")
    passages: list[Gold] = []
    for entry in gold:
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) and entry[k] for k in ("doc", "quote")
        ):
            raise DatasetError("each gold entry needs a non-empty 'doc' and 'quote'")
        passages.append(Gold(entry["doc"], entry["quote"]))
    notes = raw.get("notes", "")
    if not isinstance(notes, str):
        raise DatasetError("'notes' must be a string")
    return Question(raw["id"], raw["question"], tuple(passages), notes)


def verify(dataset: Dataset) -> list[str]:
    """Every inconsistency of the set, as sentences; empty when it is sound:
    duplicate ids, gold documents not in the corpus, quotes that are not an
    exact substring of their document."""
    problems: list[str] = []
    seen: set[str] = set()
    for question in dataset.questions:
        if question.id in seen:
            problems.append(f"{question.id}: duplicate id")
        seen.add(question.id)
        for gold in question.gold:
            if dataset.document(gold.doc) is None:
                problems.append(f"{question.id}: gold document {gold.doc} does not exist")
            elif gold.quote not in dataset.text(gold.doc):
                excerpt = gold.quote[:60]
                problems.append(f"{question.id}: quote not found in {gold.doc}: {excerpt!r}")
    return problems


def normalise(text: str) -> str:
    """Runs of whitespace (spaces, newlines, tabs) as one space, ends trimmed."""
    return " ".join(text.split())


def quote_anchors(quote: str) -> tuple[str, ...]:
    """The parts of a quote a chunk must hold one of: the whole quote if it is
    short, else its first and its last ``ANCHOR_CHARS`` characters."""
    flat = normalise(quote)
    if len(flat) <= ANCHOR_CHARS:
        return (flat,)
    return (flat[:ANCHOR_CHARS], flat[-ANCHOR_CHARS:])


def _same_file(retrieved: str, gold: str) -> bool:
    return retrieved == gold or PurePath(retrieved).name == gold


def passage_relevant(question: Question, filename: str, text: str) -> bool:
    """Whether a retrieved passage answers the question: it comes from a gold
    document and holds the start or the end of that document's gold quote."""
    flat = normalise(text)
    return any(
        _same_file(filename, gold.doc) and any(a in flat for a in quote_anchors(gold.quote))
        for gold in question.gold
    )


def document_relevant(question: Question, filename: str) -> bool:
    """Whether a retrieved passage's document is one of the gold documents."""
    return any(_same_file(filename, doc) for doc in question.gold_documents)
