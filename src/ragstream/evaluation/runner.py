"""``rag eval``: a labelled set through the running system's HTTP API, once per
retrieval configuration, scored by hit@1, hit@5, MRR and nDCG@10, and by what
the answers say.

Everything goes through the HTTP API as a user's question would. The ranking
scored is what ``POST /api/search`` returns for the question with the
configuration's options (the passages a chat with those options is given,
whatever its answer cites); the answer, from ``POST /api/chat``, is judged by
its text (a fact in it), its citations (a gold page among them) and whether
the system declined (``grounded`` false). Every question is asked,
unanswerable ones too, but only answerable ones have a ranking to score.
"""

from __future__ import annotations

import hashlib
import math
import mimetypes
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from ragstream.api import expect
from ragstream.evaluation.dataset import (
    Dataset,
    Question,
    contains_fact,
    document_relevant,
    passage_relevant,
)
from ragstream.evaluation.metrics import (
    RANKING_KEYS,
    Outcome,
    Reply,
    summarise,
    summarise_answers,
)
from shared.config import STREAM_TIMEOUT_MAX

EVAL_PASSWORD = "eval-password-not-secret"  # noqa: S105 - a throwaway local account
RANK_DEPTH = 10
# The longest wait the gateway allows: a slow generator (a small model on a
# CPU reads ten passages for several seconds) must not end the run.
STREAM_TIMEOUT = STREAM_TIMEOUT_MAX
_ALL = {"limit": 500}


@dataclass(frozen=True)
class Config:
    """One row of the results table: the per-request overrides it sends."""

    name: str
    options: dict[str, Any]


CONFIGS: tuple[Config, ...] = (
    Config("dense", {"retrieval": "dense", "reranking": "none", "hyde": False}),
    Config("lexical", {"retrieval": "lexical", "reranking": "none", "hyde": False}),
    Config("hybrid", {"retrieval": "hybrid", "reranking": "none", "hyde": False}),
    Config("hybrid+cross-encoder", {"retrieval": "hybrid", "reranking": "cross-encoder"}),
    Config("hybrid+mmr", {"retrieval": "hybrid", "reranking": "mmr"}),
    Config("hybrid+llm", {"retrieval": "hybrid", "reranking": "llm"}),
    Config("hybrid+hyde", {"retrieval": "hybrid", "reranking": "none", "hyde": True}),
    Config("hybrid+compression", {"retrieval": "hybrid", "reranking": "none", "compression": True}),
    Config(
        "hybrid+cross-encoder+hyde",
        {"retrieval": "hybrid", "reranking": "cross-encoder", "hyde": True},
    ),
)


class EvalError(Exception):
    pass


@dataclass(frozen=True)
class Asked:
    """One question put to the system: its answer, and how both the answer and
    the sources it came with are judged."""

    question: Question
    outcome: Outcome
    """The ranked sources judged (none relevant for an unanswerable question)."""
    answer: str
    cited: tuple[int, ...]
    """The 1-based source numbers the answer cites."""
    grounded: bool
    """``False``: the system declined ("not in your documents")."""
    fact: bool
    """Whether the answer's text holds a fact; ``summarise_answers`` counts it
    only for an answer that was not declined."""
    cited_gold: bool
    """Whether a cited source comes from a gold document."""

    @property
    def reply(self) -> Reply:
        return Reply(
            self.question.answerable,
            self.grounded,
            self.fact,
            self.cited_gold,
            self.outcome.latency,
        )

    def record(self) -> dict[str, Any]:
        """The question's line in ``--json``: enough to see why a figure moved."""
        return {
            "id": self.question.id,
            "split": self.question.split or None,
            "answerable": self.question.answerable,
            "grounded": self.grounded,
            "fact": self.fact,
            "cited_gold": self.cited_gold,
            "cited": list(self.cited),
            "latency_ms": round(self.outcome.latency * 1000.0, 1),
            "answer": self.answer,
            "sources": [
                {"filename": name, "relevant": relevant, "gold_document": gold}
                for relevant, (name, gold) in zip(
                    self.outcome.passages, self.outcome.documents, strict=True
                )
            ],
        }


@dataclass
class ConfigResult:
    config: str
    summary: dict[str, float] = field(default_factory=dict)
    skipped: str | None = None
    questions: list[Asked] = field(default_factory=list)


def sign_in(http: httpx.Client, dataset: Dataset) -> None:
    """A user of the eval's own, named after the corpus, so a second run
    reuses the documents the first one indexed."""
    digest = hashlib.sha256(
        "".join(sorted(p.name for p in dataset.documents)).encode()
    ).hexdigest()[:10]
    body = {"username": f"eval-{dataset.name}-{digest}", "password": EVAL_PASSWORD}
    expect(http.post("/api/auth/register", json=body), 201, 409)
    token = expect(http.post("/api/auth/login", json=body), 200)
    http.headers["Authorization"] = f"Bearer {token['access_token']}"


def upload_corpus(
    http: httpx.Client, dataset: Dataset, timeout: float, say: Callable[[str], None]
) -> None:
    listed = {d["filename"]: d for d in expect(http.get("/api/documents", params=_ALL), 200)}
    pending: dict[str, str] = {}
    for path in dataset.documents:
        known = listed.get(path.name)
        if known and known["status"] != "failed":
            pending[path.name] = known["id"]
            continue
        mime = mimetypes.guess_type(path.name)[0] or "text/plain"
        upload = {"file": (path.name, path.read_bytes(), mime)}
        pending[path.name] = expect(http.post("/api/documents", files=upload), 202)["id"]
    total, started = len(pending), time.monotonic()
    deadline = started + timeout
    while pending:
        if time.monotonic() > deadline:
            raise EvalError(f"{len(pending)} documents not indexed after {timeout:.0f} s")
        for doc in expect(http.get("/api/documents", params=_ALL), 200):
            if doc["filename"] in pending and doc["status"] in ("indexed", "failed"):
                if doc["status"] == "failed":
                    raise EvalError(f"{doc['filename']} failed to index: {doc['error']}")
                del pending[doc["filename"]]
        say(f"\rindexed {total - len(pending)}/{total} documents")
        if pending:
            time.sleep(1.0)
    say(f"\rindexed {total}/{total} documents in {time.monotonic() - started:.0f} s\n")


def _post(
    http: httpx.Client, dataset: Dataset, path: str, body: dict[str, Any]
) -> tuple[httpx.Response, float]:
    """The response and its round trip. A run can outlast the access token
    (a slow model, many configurations): on 401 sign in again, once."""
    for attempt in range(2):
        started = time.perf_counter()
        response = http.post(path, json=body)
        latency = time.perf_counter() - started
        if response.status_code != 401 or attempt:
            break
        sign_in(http, dataset)
    return response, latency


def rank(
    http: httpx.Client, dataset: Dataset, question: Question, config: Config
) -> list[dict[str, Any]] | str:
    """The passages POST /api/search ranks for the question, best first, or
    the refusal's reason."""
    body = {"query": question.question, "top_k": RANK_DEPTH, "timeout": STREAM_TIMEOUT}
    response, _ = _post(http, dataset, "/api/search", body | config.options)
    if response.status_code == 400:
        return str(response.json().get("detail", response.text))
    passages: list[dict[str, Any]] = expect(response, 200)["passages"]
    return passages


def ask(http: httpx.Client, dataset: Dataset, question: Question, config: Config) -> Asked | str:
    """One question: its ranking (from the search API) and its answer judged,
    or the refusal's reason."""
    ranked = rank(http, dataset, question, config)
    if isinstance(ranked, str):
        return ranked
    body = {
        "message": question.question,
        "top_k": RANK_DEPTH,
        "stream_timeout": STREAM_TIMEOUT,
        **config.options,
    }
    response, latency = _post(http, dataset, "/api/chat", body)
    if response.status_code == 400:
        return str(response.json().get("detail", response.text))
    reply = expect(response, 200)
    sources: list[dict[str, Any]] = reply["sources"]
    text: str = reply["answer"]
    cited = tuple(int(n) for n in reply.get("cited", ()))
    # A gateway older than the field answered exactly when it cited a source.
    grounded = bool(reply.get("grounded", bool(cited)))
    outcome = Outcome(
        passages=[passage_relevant(question, p["filename"], p["text"]) for p in ranked],
        documents=[(p["filename"], document_relevant(question, p["filename"])) for p in ranked],
        latency=latency,
        n_gold=len(question.gold),
        n_gold_documents=len(question.gold_documents),
    )
    return Asked(
        question=question,
        outcome=outcome,
        answer=text,
        cited=cited,
        grounded=grounded,
        fact=contains_fact(text, question.facts),
        cited_gold=cites_gold(question, sources, cited),
    )


def cites_gold(question: Question, sources: Sequence[dict[str, Any]], cited: Sequence[int]) -> bool:
    """Whether one of the cited source numbers (1-based) is a passage of a gold
    document. A number with no source behind it cites nothing."""
    return any(
        1 <= n <= len(sources) and document_relevant(question, sources[n - 1]["filename"])
        for n in cited
    )


def summarise_config(asked: Sequence[Asked]) -> dict[str, float]:
    """Ranking figures over the answerable questions (an unanswerable one has no
    right source to rank), answer figures, latency and counts over all of them.
    With no answerable question the ranking figures are NaN, not 0."""
    ranked = [a.outcome for a in asked if a.question.answerable]
    ranking = summarise(ranked)
    figures = {key: ranking[key] if ranked else math.nan for key in RANKING_KEYS}
    return figures | summarise_answers(a.reply for a in asked)


def run_config(
    http: httpx.Client, dataset: Dataset, config: Config, say: Callable[[str], None]
) -> ConfigResult:
    result = ConfigResult(config.name)
    for n, question in enumerate(dataset.questions, start=1):
        asked = ask(http, dataset, question, config)
        if isinstance(asked, str):
            result.skipped = asked
            return result
        result.questions.append(asked)
        say(f"\r{config.name}: {n}/{len(dataset.questions)}")
    say("\n")
    result.summary = summarise_config(result.questions)
    return result


def sample(dataset: Dataset, n: int) -> Dataset:
    """``n`` questions: the first answerable and the first unanswerable ones, in
    the proportion the set holds them, and at least one of each kind when
    ``n`` and the set allow, so a short run still measures declining. (The
    committed set lists its unanswerable questions last: the first ``n`` alone
    would never ask one.) The chosen questions keep the set's order."""
    if n >= len(dataset.questions):
        return dataset
    answerable = dataset.answerable().questions
    unanswerable = dataset.unanswerable().questions
    k = round(n * len(unanswerable) / len(dataset.questions))
    if answerable and unanswerable and n >= 2:
        k = min(max(k, 1), n - 1)
    # Too few answerable questions to fill the rest: more unanswerable ones.
    k = max(k, n - len(answerable))
    chosen = {*answerable[: n - k], *unanswerable[:k]}
    return replace(dataset, questions=tuple(q for q in dataset.questions if q in chosen))


def run(
    base_url: str,
    dataset: Dataset,
    configs: Sequence[Config],
    *,
    index_timeout: float = 1800.0,
    say: Callable[[str], None] = print,
    scored: Callable[[list[ConfigResult]], None] | None = None,
) -> list[ConfigResult]:
    """Every configuration in turn; ``scored`` sees the results so far after
    each, so a long run keeps what it measured if a later one fails."""
    results: list[ConfigResult] = []
    with httpx.Client(base_url=base_url, timeout=STREAM_TIMEOUT + 30) as http:
        sign_in(http, dataset)
        upload_corpus(http, dataset, index_timeout, say)
        for config in configs:
            results.append(run_config(http, dataset, config, say))
            if scored is not None:
                scored(results)
    return results


RETRIEVAL_COLUMNS = RANKING_KEYS
ANSWER_COLUMNS = ("fact", "cited_gold", "declined", "false_decline", "p50_ms", "p95_ms")
MISSING = "\u2014"  # a figure with nothing to count over
_NAME_WIDTH = 28


def _cell(value: float | None, column: str) -> str:
    width = max(10, len(column) + 2)
    if value is None or math.isnan(value):
        return f"{MISSING:>{width}}"
    if column.endswith("_ms"):
        return f"{value:>{width}.0f}"
    return f"{value:>{width}.3f}"


def _table(title: str, columns: Sequence[str], results: Sequence[ConfigResult]) -> list[str]:
    head = f"{'configuration':<{_NAME_WIDTH}}" + "".join(
        f"{c:>{max(10, len(c) + 2)}}" for c in columns
    )
    lines = [title, head, "-" * len(head)]
    for result in results:
        if result.skipped:
            lines.append(f"{result.config:<{_NAME_WIDTH}}  skipped: {result.skipped}")
            continue
        cells = "".join(_cell(result.summary.get(c), c) for c in columns)
        lines.append(f"{result.config:<{_NAME_WIDTH}}{cells}")
    return lines


def table(results: Sequence[ConfigResult]) -> str:
    """Two tables, one row per configuration: retrieval, scored over the
    answerable questions; answers and latency (ms), over every question."""
    retrieval = _table("retrieval (answerable questions)", RETRIEVAL_COLUMNS, results)
    answers = _table(
        "answers (fact, cited_gold, false_decline: answerable; declined: unanswerable)",
        ANSWER_COLUMNS,
        results,
    )
    return "\n".join([*retrieval, "", *answers])


def headline(result: ConfigResult) -> str:
    """One line for a configuration just scored, while the run goes on."""
    if result.skipped:
        return f"{result.config}: skipped: {result.skipped}"
    figures = "  ".join(
        f"{c} {_cell(result.summary.get(c), c).strip()}"
        for c in ("hit@1", "doc_hit@1", "fact", "cited_gold", "declined", "false_decline", "p50_ms")
    )
    return f"{result.config}: {figures}"


def _json_number(value: float) -> float | None:
    # JSON has no NaN: a figure with nothing to count over is null.
    return None if math.isnan(value) else value


def json_rows(results: Sequence[ConfigResult], split: str) -> list[dict[str, Any]]:
    """What ``--json`` writes: a row per configuration, its figures (NaN as
    null) and a record per question asked."""
    return [
        {
            "config": result.config,
            "split": split,
            "skipped": result.skipped,
            **{key: _json_number(value) for key, value in result.summary.items()},
            "questions": [asked.record() for asked in result.questions],
        }
        for result in results
    ]


def default_dataset_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "eval" / "pydocs"
