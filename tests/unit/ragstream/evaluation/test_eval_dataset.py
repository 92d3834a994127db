"""The committed labelled set (eval/pydocs), its loader and the relevance rules."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from ragstream.evaluation.dataset import (
    SPLITS,
    Dataset,
    DatasetError,
    Gold,
    Question,
    contains_fact,
    document_relevant,
    load_dataset,
    normalise,
    passage_relevant,
    verify,
)

ROOT = Path(__file__).resolve().parents[4] / "eval" / "pydocs"
PACKAGE = Path(__file__).resolve().parents[4] / "src" / "ragstream" / "evaluation"
COPY_LIMIT = 40


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_dataset(ROOT)


# --- the committed set


def test_committed_set_loads(dataset: Dataset) -> None:
    assert dataset.name == "pydocs"
    assert 100 <= len(dataset.documents) <= 130
    assert all(p.suffix == ".md" for p in dataset.documents)
    assert dataset.documents == sorted(dataset.documents)
    assert len(dataset.questions) >= 70


def test_committed_corpus_stays_small(dataset: Dataset) -> None:
    sizes = [p.stat().st_size for p in dataset.documents]
    assert max(sizes) <= 150_000
    assert sum(sizes) <= 2_500_000


def test_committed_questions_spread_over_many_documents(dataset: Dataset) -> None:
    gold_documents = {doc for q in dataset.questions for doc in q.gold_documents}
    assert len(gold_documents) >= 50


def test_committed_set_verifies(dataset: Dataset) -> None:
    assert verify(dataset) == []


def test_committed_set_has_facts_for_every_answerable_question(dataset: Dataset) -> None:
    answerable = dataset.answerable().questions
    assert len(answerable) >= 70
    for question in answerable:
        assert 1 <= len(question.facts) <= 3, question.id


def test_committed_facts_are_not_given_away_by_the_question(dataset: Dataset) -> None:
    """An answer that only repeats the question must not pass for a correct one."""
    for question in dataset.answerable().questions:
        assert not contains_fact(question.question, question.facts), question.id


def test_committed_set_has_unanswerable_questions_of_both_kinds(dataset: Dataset) -> None:
    unanswerable = dataset.unanswerable().questions
    assert len(unanswerable) >= 40
    assert all(q.id.startswith("u") and q.facts == () for q in unanswerable)
    kinds = [q.notes.split(":")[0].split(" (")[0] for q in unanswerable]
    assert set(kinds) == {"off-topic", "near miss"}
    assert kinds.count("off-topic") >= 8
    assert kinds.count("near miss") >= 30


def test_committed_splits_halve_both_kinds(dataset: Dataset) -> None:
    assert all(q.split in SPLITS for q in dataset.questions)
    for kind in (dataset.answerable(), dataset.unanswerable()):
        tune, test = (len(kind.only(split).questions) for split in SPLITS)
        assert tune + test == len(kind.questions)
        assert abs(tune - test) <= 2, (tune, test)
    for split in SPLITS:
        half = dataset.only(split)
        off_topic = [q for q in half.unanswerable().questions if q.notes.startswith("off-topic")]
        assert half.answerable().questions
        assert off_topic
        assert len(off_topic) < len(half.unanswerable().questions)


def test_question_ids_are_unique(dataset: Dataset) -> None:
    ids = [q.id for q in dataset.questions]
    assert len(ids) == len(set(ids))


def test_quotes_are_short_single_paragraph_excerpts(dataset: Dataset) -> None:
    for question in dataset.answerable().questions:
        assert 1 <= len(question.gold) <= 2, question.id
        for gold in question.gold:
            assert 40 <= len(gold.quote) <= 200, question.id
            assert "\n" not in gold.quote, question.id


def test_questions_do_not_copy_their_gold_documents(dataset: Dataset) -> None:
    """No run of 40 characters of a question (case and whitespace aside) is
    found in a gold document: questions are asked in the user's own words."""
    for question in dataset.questions:
        asked = normalise(question.question).lower()
        for doc in question.gold_documents:
            text = normalise(dataset.text(doc)).lower()
            copied = [
                asked[i : i + COPY_LIMIT]
                for i in range(len(asked) - COPY_LIMIT + 1)
                if asked[i : i + COPY_LIMIT] in text
            ]
            assert not copied, f"{question.id} copies {copied[0]!r} from {doc}"


def test_every_gold_passage_is_judged_relevant_for_its_own_quote(dataset: Dataset) -> None:
    for question in dataset.questions:
        for gold in question.gold:
            assert passage_relevant(question, gold.doc, gold.quote), question.id
            assert document_relevant(question, gold.doc), question.id


def test_every_gold_passage_survives_ingestion_chunking(dataset: Dataset) -> None:
    """Cut as ingestion cuts it (default chunk size and overlap), each gold
    quote lands in a chunk that the relevance rule accepts."""
    chunking = pytest.importorskip("ingest.chunking")
    loaders = pytest.importorskip("ingest.loaders")
    config = pytest.importorskip("shared.config")
    size = config.Settings.model_fields["chunk_size"].default
    overlap = config.Settings.model_fields["chunk_overlap"].default
    chunks: dict[str, list[str]] = {}
    for path in dataset.documents:
        sections = loaders.load(path.name, path.read_bytes())
        pieces = chunking.split(path.name, sections, size=size, overlap=overlap)
        chunks[path.name] = [piece.text for piece in pieces]
    for question in dataset.questions:
        for gold in question.gold:
            alone = Question(question.id, question.question, (gold,))
            assert any(passage_relevant(alone, gold.doc, c) for c in chunks[gold.doc]), (
                f"{question.id}: no chunk of {gold.doc} holds its quote"
            )


def test_head_keeps_the_corpus(dataset: Dataset) -> None:
    head = dataset.head(5)
    assert [q.id for q in head.questions] == [q.id for q in dataset.questions[:5]]
    assert head.documents == dataset.documents
    assert head.name == dataset.name


def test_evaluation_package_imports_no_service() -> None:
    forbidden = {"gateway", "ingest", "query"}
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


# --- relevance rules

QUOTE = (
    "Daemon threads are abruptly stopped at shutdown. Their resources (such as open "
    "files, database transactions, etc.) may not be released properly."
)
QUESTION = Question("t1", "Why do my threads die?", (Gold("threading.md", QUOTE),))


def test_passage_holding_the_whole_quote_is_relevant() -> None:
    assert passage_relevant(QUESTION, "threading.md", f"Before.\n\n{QUOTE} And after.")


def test_passage_holding_the_start_or_the_end_of_the_quote_is_relevant() -> None:
    # A chunk that ends 40 characters into the quote (the rest is in the next one)...
    assert passage_relevant(QUESTION, "threading.md", "Before.\n\n" + QUOTE[:40])
    # ... or one that starts with its last 40.
    assert passage_relevant(QUESTION, "threading.md", QUOTE[-40:] + "\n\n# Next heading")


def test_passage_holding_only_the_middle_of_the_quote_is_not() -> None:
    assert not passage_relevant(QUESTION, "threading.md", QUOTE[5:39])
    assert not passage_relevant(QUESTION, "threading.md", QUOTE[10:-10])


def test_passage_relevance_ignores_how_whitespace_is_wrapped() -> None:
    rewrapped = QUOTE.replace(" ", "\n", 3).replace("open files", "open   files")
    assert passage_relevant(QUESTION, "threading.md", rewrapped)


def test_passage_from_another_document_is_not_relevant() -> None:
    assert not passage_relevant(QUESTION, "multiprocessing.md", QUOTE)
    assert not passage_relevant(QUESTION, "threading.md", "Unrelated text about locks.")


def test_a_short_quote_must_be_held_whole() -> None:
    short = Question("t2", "?", (Gold("a.md", "Return a shell-escaped version of *s*."),))
    assert passage_relevant(short, "a.md", "x Return a shell-escaped version of *s*. y")
    assert not passage_relevant(short, "a.md", "Return a shell-escaped version")


def test_either_of_two_gold_passages_makes_a_passage_relevant() -> None:
    two = Question("t3", "?", (Gold("a.md", "first quote here"), Gold("b.md", "second quote")))
    assert passage_relevant(two, "b.md", "... second quote ...")
    assert not passage_relevant(two, "a.md", "... second quote ...")
    assert two.gold_documents == ("a.md", "b.md")


def test_document_relevance_is_membership_of_the_gold_documents() -> None:
    assert document_relevant(QUESTION, "threading.md")
    assert not document_relevant(QUESTION, "queue.md")


# --- loading and verifying


def _write_set(root: Path, lines: list[str]) -> None:
    (root / "docs").mkdir()
    (root / "docs" / "a.md").write_text("# A\n\nThe quick brown fox jumps.\n", encoding="utf-8")
    (root / "questions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_verify_reports_every_problem(tmp_path: Path) -> None:
    _write_set(
        tmp_path,
        [
            '{"id": "x1", "question": "q", "gold": [{"doc": "a.md", "quote": "quick brown fox"}]}',
            '{"id": "x1", "question": "q", "gold": [{"doc": "b.md", "quote": "anything"}]}',
            '{"id": "x2", "question": "q", "gold": [{"doc": "a.md", "quote": "slow brown fox"}]}',
            "",
        ],
    )
    loaded = load_dataset(tmp_path)
    assert loaded.name == tmp_path.name
    assert [p.name for p in loaded.documents] == ["a.md"]
    assert loaded.questions[0].notes == ""
    problems = verify(loaded)
    assert len(problems) == 3
    assert any("x1" in p and "duplicate" in p for p in problems)
    assert any("b.md" in p and "does not exist" in p for p in problems)
    assert any("x2" in p and "not found" in p for p in problems)


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "[1, 2]",
        json.dumps({"id": "x", "question": "q"}),
        json.dumps({"id": "x", "question": "q", "gold": "a.md"}),
        json.dumps({"id": "x", "question": "", "gold": [{"doc": "a.md", "quote": "q"}]}),
        json.dumps({"id": "x", "question": "q", "gold": [{"doc": "a.md"}]}),
        json.dumps({"question": "q", "gold": [{"doc": "a.md", "quote": "q"}]}),
    ],
)
def test_a_malformed_line_is_refused_with_its_number(tmp_path: Path, line: str) -> None:
    ok = json.dumps({"id": "x0", "question": "q", "gold": [{"doc": "a.md", "quote": "fox"}]})
    _write_set(tmp_path, [ok, line])
    with pytest.raises(DatasetError, match="line 2"):
        load_dataset(tmp_path)


def test_a_missing_folder_or_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError):
        load_dataset(tmp_path)
    (tmp_path / "docs").mkdir()
    with pytest.raises(DatasetError):
        load_dataset(tmp_path)


# --- facts, splits and unanswerable questions

FOX = {"doc": "a.md", "quote": "quick brown fox"}


def _line(qid: str, gold: list[dict[str, str]], **fields: object) -> str:
    return json.dumps({"id": qid, "question": "q", "gold": gold, **fields})


def test_facts_split_and_an_unanswerable_question_load(tmp_path: Path) -> None:
    _write_set(
        tmp_path,
        [
            _line("x1", [FOX], facts=["brown fox", "fox"], split="tune"),
            _line("x2", [], facts=[], split="test", notes="off-topic"),
            _line("x3", []),
        ],
    )
    x1, x2, x3 = load_dataset(tmp_path).questions
    assert (x1.facts, x1.split, x1.answerable) == (("brown fox", "fox"), "tune", True)
    assert (x2.facts, x2.split, x2.answerable) == ((), "test", False)
    assert (x3.facts, x3.split) == ((), "")
    assert x2.gold_documents == ()
    assert not passage_relevant(x2, "a.md", "quick brown fox")
    assert not document_relevant(x2, "a.md")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (_line("x", [], facts=["fox"]), "'facts' must be empty"),
        (_line("x", [FOX], facts=["fox", 3]), "'facts'"),
        (_line("x", [FOX], facts="fox"), "'facts'"),
        (_line("x", [FOX], facts=["  "]), "'facts'"),
        # Empty once markup is removed: it would be contained in any answer.
        (_line("x", [FOX], facts=["**``**"]), "'facts'"),
        (_line("x", [FOX], split="dev"), "'split'"),
        (_line("x", [FOX], split=""), "'split'"),
        (_line("x", [FOX], split=None), "'split'"),
    ],
)
def test_bad_facts_or_split_are_refused(tmp_path: Path, line: str, message: str) -> None:
    _write_set(tmp_path, [_line("x0", [FOX]), line])
    with pytest.raises(DatasetError, match=f"line 2: .*{message}"):
        load_dataset(tmp_path)


def test_verify_reports_a_fact_missing_from_the_gold_documents(tmp_path: Path) -> None:
    _write_set(
        tmp_path,
        [
            # Found despite case and markup: the page says "The quick brown fox".
            _line("x1", [FOX], facts=["THE *quick* `brown`"]),
            _line("x2", [FOX], facts=["red fox", "lazy dog"]),
            _line("x3", [FOX]),
            _line("x4", []),
        ],
    )
    problems = verify(load_dataset(tmp_path))
    assert problems == [
        "x2: fact not found in its gold documents: 'red fox'",
        "x2: fact not found in its gold documents: 'lazy dog'",
        "x3: answerable but has no facts",
    ]


def test_verify_reports_a_question_left_out_of_the_splits(tmp_path: Path) -> None:
    _write_set(tmp_path, [_line("x1", [FOX], split="tune"), _line("x2", [FOX])])
    assert verify(load_dataset(tmp_path)) == ["x2: no split"]


def test_verify_keeps_a_set_without_facts_or_splits_clean(tmp_path: Path) -> None:
    _write_set(tmp_path, [_line("x1", [FOX]), _line("x2", [])])
    assert verify(load_dataset(tmp_path)) == []


def test_only_keeps_one_split_and_the_corpus(tmp_path: Path) -> None:
    _write_set(
        tmp_path,
        [
            _line("x1", [FOX], split="tune"),
            _line("x2", [FOX], split="test"),
            _line("x3", [], split="tune"),
            _line("x4", [FOX]),
        ],
    )
    loaded = load_dataset(tmp_path)
    tune = loaded.only("tune")
    assert [q.id for q in tune.questions] == ["x1", "x3"]
    assert [q.id for q in loaded.only("test").questions] == ["x2"]
    assert tune.documents == loaded.documents
    assert tune.name == loaded.name
    # A question without a split is in neither half.
    assert "x4" not in {q.id for s in SPLITS for q in loaded.only(s).questions}
    assert [q.id for q in tune.answerable().questions] == ["x1"]
    assert [q.id for q in tune.unanswerable().questions] == ["x3"]
    with pytest.raises(ValueError, match="split"):
        loaded.only("")


def test_contains_fact_ignores_case_markup_and_whitespace() -> None:
    assert contains_fact("Pass **`sort_keys=True`** to dumps.", ["sort_keys"])
    assert contains_fact("Use `datetime.now(timezone.utc)`", ["datetime.now(timezone.utc)"])
    assert contains_fact("the  Global\n Interpreter   lock", ["global interpreter lock"])
    assert contains_fact("It isn\u2019t thread-safe", ["isn't thread-safe"])
    assert contains_fact("due to the GIL", ["Global Interpreter Lock", "GIL"])


def test_contains_fact_keeps_underscores() -> None:
    assert not contains_fact("set sort keys to true", ["sort_keys"])
    assert not contains_fact("set sortkeys to true", ["sort_keys"])
    assert contains_fact("if __name__ == '__main__':", ["__main__"])
    assert not contains_fact("the main module", ["__main__"])


def test_contains_fact_needs_a_fact() -> None:
    assert not contains_fact("anything at all", [])
    assert not contains_fact("anything at all", ["**", " "])
    assert not contains_fact("", ["fox"])
