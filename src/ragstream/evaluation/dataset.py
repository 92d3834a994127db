"""A labelled retrieval set on disk, and how a retrieved passage is judged.

A set is a folder::

    docs/              the corpus: every file in it is uploaded
    questions.jsonl    one question a line:
                       {"id": "q001", "question": "...",
                        "gold": [{"doc": "json.md", "quote": "..."}],
                        "facts": ["sort_keys"], "split": "tune", "notes": "..."}

Each gold entry names a document and quotes, exactly, the passage of it that
answers the question. A retrieved passage is relevant when it comes from a
gold document and holds enough of a gold quote (``passage_relevant``); a
retrieved document is relevant when it is a gold document
(``document_relevant``).

A question with an empty ``gold`` is one the corpus cannot answer: the system
should decline it. ``facts`` (optional) are short phrases, any one of which a
correct answer contains (``contains_fact``); an unanswerable question has
none. ``split`` (optional) is ``"tune"`` or ``"test"``: settings are tuned on
one half and figures reported on the other (``Dataset.only``).

Pure standard library, so the set can be loaded and checked without the
running system.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import Any

QUESTIONS_FILE = "questions.jsonl"
DOCS_DIR = "docs"
# How much of a quote a chunk must hold: its first or its last this many
# characters (whitespace-normalised), so a quote that straddles a chunk
# boundary still counts for the chunk holding most of it.
ANCHOR_CHARS = 40
SPLITS = ("tune", "test")
"""The values ``split`` may take; a question without one is in neither."""
# Markup a fact is compared without: the corpus marks emphasis with ``*`` and
# code with backticks, and an answer quoting it may keep or drop either.
# Underscores stay: they are part of identifiers (``sort_keys``, ``__main__``)
# and the corpus never uses them for emphasis.
_MARKUP = str.maketrans(
    {"*": None, "`": None, "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}
)


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
    """Empty for a question the corpus cannot answer."""
    notes: str = ""
    facts: tuple[str, ...] = ()
    """Phrases any one of which a correct answer contains (``contains_fact``)."""
    split: str = ""
    """``"tune"``, ``"test"``, or ``""`` when the set does not say."""

    @property
    def answerable(self) -> bool:
        """Whether the corpus answers the question (it has gold passages)."""
        return bool(self.gold)

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
        return self._with(self.questions[:n])

    def only(self, split: str) -> Dataset:
        """The same corpus with only the questions of ``split`` (``"tune"`` or
        ``"test"``). A question without a split is in neither: figures are
        reported on a half chosen in advance, never on whatever is unlabelled."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
        return self._with(tuple(q for q in self.questions if q.split == split))

    def answerable(self) -> Dataset:
        """The same corpus with only the questions it answers."""
        return self._with(tuple(q for q in self.questions if q.answerable))

    def unanswerable(self) -> Dataset:
        """The same corpus with only the questions it cannot answer."""
        return self._with(tuple(q for q in self.questions if not q.answerable))

    def _with(self, questions: tuple[Question, ...]) -> Dataset:
        # The text cache is shared: the corpus is the same.
        return replace(self, questions=questions, _texts=self._texts)

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
    gold = _gold(raw.get("gold"))
    facts = _facts(raw.get("facts", []))
    if facts and not gold:
        raise DatasetError("'facts' must be empty when 'gold' is: nothing answers the question")
    split = raw.get("split", "")
    # An explicit "" is refused too: a split is either stated or left out.
    if "split" in raw and split not in SPLITS:
        raise DatasetError(f"'split' must be one of {', '.join(SPLITS)}")
    notes = raw.get("notes", "")
    if not isinstance(notes, str):
        raise DatasetError("'notes' must be a string")
    return Question(raw["id"], raw["question"], gold, notes, facts, split)


def _gold(gold: Any) -> tuple[Gold, ...]:
    # Required even when empty: an unanswerable question is labelled so on
    # purpose, not by forgetting the field.
    if not isinstance(gold, list):
        raise DatasetError("'gold' must be a list (empty if the corpus cannot answer)")
    passages: list[Gold] = []
    for entry in gold:
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) and entry[k] for k in ("doc", "quote")
        ):
            raise DatasetError("each gold entry needs a non-empty 'doc' and 'quote'")
        passages.append(Gold(entry["doc"], entry["quote"]))
    return tuple(passages)


def _facts(facts: Any) -> tuple[str, ...]:
    # A fact that is empty once normalised would be contained in any answer.
    if not isinstance(facts, list) or not all(isinstance(f, str) and fact_text(f) for f in facts):
        raise DatasetError("'facts' must be a list of non-empty strings")
    return tuple(facts)


def verify(dataset: Dataset) -> list[str]:
    """Every inconsistency of the set, as sentences; empty when it is sound:
    duplicate ids, gold documents not in the corpus, quotes that are not an
    exact substring of their document, facts found in none of the question's
    gold documents. Once any question has facts, an answerable question
    without them is reported; once any has a split, one without it is (a set
    that uses neither, an older one, stays clean)."""
    problems: list[str] = []
    seen: set[str] = set()
    uses_facts = any(q.facts for q in dataset.questions)
    uses_splits = any(q.split for q in dataset.questions)
    flat_texts: dict[str, str] = {}
    for question in dataset.questions:
        if question.id in seen:
            problems.append(f"{question.id}: duplicate id")
        seen.add(question.id)
        problems.extend(_gold_problems(dataset, question))
        problems.extend(_fact_problems(dataset, question, flat_texts))
        if uses_facts and question.answerable and not question.facts:
            problems.append(f"{question.id}: answerable but has no facts")
        if uses_splits and not question.split:
            problems.append(f"{question.id}: no split")
    return problems


def _gold_problems(dataset: Dataset, question: Question) -> list[str]:
    problems: list[str] = []
    for gold in question.gold:
        if dataset.document(gold.doc) is None:
            problems.append(f"{question.id}: gold document {gold.doc} does not exist")
        elif gold.quote not in dataset.text(gold.doc):
            excerpt = gold.quote[:60]
            problems.append(f"{question.id}: quote not found in {gold.doc}: {excerpt!r}")
    return problems


def _fact_problems(dataset: Dataset, question: Question, flat_texts: dict[str, str]) -> list[str]:
    """Facts that an answer quoting the question's gold documents could not
    contain. ``flat_texts`` caches each document's ``fact_text`` across calls."""
    texts: list[str] = []
    for doc in question.gold_documents:
        if dataset.document(doc) is None:
            continue  # already reported by _gold_problems
        if doc not in flat_texts:
            flat_texts[doc] = fact_text(dataset.text(doc))
        texts.append(flat_texts[doc])
    return [
        f"{question.id}: fact not found in its gold documents: {fact!r}"
        for fact in question.facts
        if not any(fact_text(fact) in text for text in texts)
    ]


def fact_text(text: str) -> str:
    """``text`` as facts are compared: lower case, without ``*`` and backticks,
    typographic quotes as ASCII ones, runs of whitespace as one space."""
    return normalise(text.translate(_MARKUP)).lower()


def contains_fact(answer: str, facts: Sequence[str]) -> bool:
    """Whether ``answer`` contains any one of ``facts``, both compared as
    ``fact_text``: so ``**sort_keys**`` and `` `sort_keys` `` both contain
    ``sort_keys``. No facts, no match (an unanswerable question has none)."""
    flat = fact_text(answer)
    needles = (fact_text(fact) for fact in facts)
    # An empty needle is in every text: it must not count as a match.
    return any(needle and needle in flat for needle in needles)


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
