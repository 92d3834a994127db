"""``rag eval``: a labelled set through the running system's HTTP API, once per
retrieval configuration, scored by hit@1, hit@5, MRR and nDCG@10.

Everything goes through ``POST /api/chat`` as a user's question would: the
ranking scored is the ``sources`` list the answer came with.
"""

from __future__ import annotations

import hashlib
import mimetypes
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ragstream.api import expect
from ragstream.evaluation.dataset import Dataset, Question, document_relevant, passage_relevant
from ragstream.evaluation.metrics import Outcome, summarise
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


@dataclass
class ConfigResult:
    config: str
    summary: dict[str, float] = field(default_factory=dict)
    skipped: str | None = None
    questions: list[Outcome] = field(default_factory=list)


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


def _chat(
    http: httpx.Client, dataset: Dataset, body: dict[str, Any]
) -> tuple[httpx.Response, float]:
    """The response and its round trip. A run can outlast the access token
    (a slow model, many configurations): on 401 sign in again, once."""
    for attempt in range(2):
        started = time.perf_counter()
        response = http.post("/api/chat", json=body)
        latency = time.perf_counter() - started
        if response.status_code != 401 or attempt:
            break
        sign_in(http, dataset)
    return response, latency


def ask(http: httpx.Client, dataset: Dataset, question: Question, config: Config) -> Outcome | str:
    """One question; the ranked sources judged, or the refusal's reason."""
    body = {
        "message": question.question,
        "top_k": RANK_DEPTH,
        "stream_timeout": STREAM_TIMEOUT,
        **config.options,
    }
    response, latency = _chat(http, dataset, body)
    if response.status_code == 400:
        return str(response.json().get("detail", response.text))
    answer = expect(response, 200)
    sources = answer["sources"]
    return Outcome(
        passages=[passage_relevant(question, s["filename"], s["text"]) for s in sources],
        documents=[(s["filename"], document_relevant(question, s["filename"])) for s in sources],
        latency=latency,
        n_gold=len(question.gold),
        n_gold_documents=len(question.gold_documents),
    )


def run_config(
    http: httpx.Client, dataset: Dataset, config: Config, say: Callable[[str], None]
) -> ConfigResult:
    result = ConfigResult(config.name)
    for n, question in enumerate(dataset.questions, start=1):
        outcome = ask(http, dataset, question, config)
        if isinstance(outcome, str):
            result.skipped = outcome
            return result
        result.questions.append(outcome)
        say(f"\r{config.name}: {n}/{len(dataset.questions)}")
    say("\n")
    result.summary = summarise(result.questions)
    return result


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


COLUMNS = ("hit@1", "hit@5", "mrr", "ndcg@10", "doc_hit@1", "doc_hit@5", "doc_mrr",
           "doc_ndcg@10", "p50_ms", "p95_ms")  # fmt: skip


def table(results: Sequence[ConfigResult]) -> str:
    head = f"{'configuration':<28}" + "".join(f"{c:>10}" for c in COLUMNS)
    lines = [head, "-" * len(head)]
    for result in results:
        if result.skipped:
            lines.append(f"{result.config:<28}  skipped: {result.skipped}")
            continue
        cells = "".join(f"{result.summary[c]:>10.3f}" for c in COLUMNS[:-2])
        cells += "".join(f"{result.summary[c]:>10.0f}" for c in COLUMNS[-2:])
        lines.append(f"{result.config:<28}{cells}")
    return "\n".join(lines)


def default_dataset_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "eval" / "pydocs"
