"""rag eval's client side (ragstream.evaluation.runner), against a scripted
HTTP transport: what it does when the gateway's answers change mid-run."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragstream import cli
from ragstream.api import ApiError
from ragstream.evaluation import runner
from ragstream.evaluation.dataset import Dataset, Gold, Question
from ragstream.evaluation.metrics import RANKING_KEYS
from ragstream.evaluation.runner import (
    ANSWER_COLUMNS,
    CONFIGS,
    MISSING,
    Asked,
    Config,
    ConfigResult,
    ask,
    headline,
    json_rows,
    run_config,
    sample,
    table,
)

QUESTION = Question(
    "q1",
    "When does the car park close?",
    (Gold("parking.md", "closes at 8pm"),),
    facts=("8pm",),
    split="tune",
)
DATASET = Dataset("tiny", Path("."), [], (QUESTION,))
SOURCE = {"filename": "parking.md", "text": "The car park closes at 8pm."}
OTHER = {"filename": "vpn.md", "text": "Reset your VPN password in the portal."}


class Gateway:
    """Tokens ``t1``, ``t2``, ... from each login; chat refuses all but the newest."""

    def __init__(self, refuse_always: bool = False) -> None:
        self.logins = 0
        self.refuse_always = refuse_always
        self.chats: list[dict[str, object]] = []
        self.searches: list[dict[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/register":
            return httpx.Response(409)
        if request.url.path == "/api/auth/login":
            self.logins += 1
            return httpx.Response(200, json={"access_token": f"t{self.logins}"})
        search = request.url.path == "/api/search"
        (self.searches if search else self.chats).append(json.loads(request.content))
        current = request.headers["Authorization"] == f"Bearer t{self.logins}"
        if self.refuse_always or not current:
            return httpx.Response(401, json={"detail": "Invalid token"})
        if search:
            return httpx.Response(200, json={"query": "q", "passages": [SOURCE]})
        return httpx.Response(
            200, json={"answer": "8pm [1]", "sources": [SOURCE], "cited": [1], "grounded": True}
        )


def _client(gateway: Gateway) -> httpx.Client:
    http = httpx.Client(base_url="http://gateway", transport=httpx.MockTransport(gateway))
    http.headers["Authorization"] = "Bearer t0"
    gateway.logins = 1  # as if signed in once, long ago
    return http


def test_an_expired_token_is_renewed_once_and_the_question_asked_again() -> None:
    gateway = Gateway()
    asked = ask(_client(gateway), DATASET, QUESTION, CONFIGS[2])
    assert not isinstance(asked, str)
    assert asked.outcome.documents == [("parking.md", True)]
    assert gateway.logins == 2
    # The search met the expired token; the chat after it had the new one.
    assert len(gateway.searches) == 2
    assert len(gateway.chats) == 1
    assert gateway.searches[0]["timeout"] == 300.0
    assert gateway.searches[0]["retrieval"] == "hybrid"
    assert gateway.chats[0]["stream_timeout"] == 300.0
    assert gateway.chats[0]["retrieval"] == "hybrid"


def test_a_refusal_that_survives_a_new_token_ends_the_run() -> None:
    gateway = Gateway(refuse_always=True)
    with pytest.raises(ApiError, match="401"):
        ask(_client(gateway), DATASET, QUESTION, CONFIGS[2])
    assert len(gateway.searches) == 2


# --- answers: what each question records, and the figures over a run ---------

DECLINED = {
    "answer": "That is not in your documents.",
    "sources": [OTHER],
    "cited": [],
    "grounded": False,
}
UNANSWERABLE = Question("u1", "What is the wifi password?", ())


class Scripted:
    """A signed-in gateway that answers each question with the reply scripted
    for its text (``DECLINED`` when none is)."""

    def __init__(
        self,
        replies: dict[str, dict[str, Any]],
        rankings: dict[str, list[dict[str, str]]] | None = None,
    ) -> None:
        """``rankings``: what the search API ranks for a question (by default
        the scripted answer's sources)."""
        self.replies = replies
        self.rankings = rankings or {}
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/login":
            return httpx.Response(200, json={"access_token": "t"})
        if request.url.path == "/api/auth/register":
            return httpx.Response(409)
        if request.url.path == "/api/search":
            query = json.loads(request.content)["query"]
            ranked = self.rankings.get(query, self.replies.get(query, DECLINED)["sources"])
            return httpx.Response(200, json={"query": query, "passages": ranked})
        message = json.loads(request.content)["message"]
        self.asked.append(message)
        return httpx.Response(200, json=self.replies.get(message, DECLINED))


def _scripted(replies: dict[str, dict[str, Any]]) -> httpx.Client:
    return httpx.Client(base_url="http://gateway", transport=httpx.MockTransport(Scripted(replies)))


def _reply(answer: str, sources: list[dict[str, str]], cited: list[int]) -> dict[str, Any]:
    return {"answer": answer, "sources": sources, "cited": cited, "grounded": bool(cited)}


def _asked(reply: dict[str, Any], question: Question = QUESTION) -> Asked:
    asked = ask(_scripted({question.question: reply}), DATASET, question, CONFIGS[2])
    assert isinstance(asked, Asked)
    return asked


def test_an_answer_is_recorded_with_its_citations_and_judged() -> None:
    asked = _asked(_reply("It closes at **8pm** [2].", [OTHER, SOURCE], [2]))
    assert asked.answer == "It closes at **8pm** [2]."
    assert asked.cited == (2,)
    assert asked.grounded
    assert asked.fact  # markup aside, "8pm" is in the answer
    assert asked.cited_gold  # source 2 is from parking.md
    assert asked.outcome.passages == [False, True]
    record = asked.record()
    assert record["id"] == "q1"
    assert record["split"] == "tune"
    assert record["answerable"] is True
    assert record["cited"] == [2]
    assert record["sources"][1] == {
        "filename": "parking.md",
        "relevant": True,
        "gold_document": True,
    }
    json.dumps(record)  # all of it serialisable


def test_the_ranking_scored_is_the_search_apis_not_the_answers_sources() -> None:
    """An answer given only the wrong page still ranks the right one first
    if the search API does: ranking figures do not depend on the answer."""
    client = httpx.Client(
        base_url="http://gateway",
        transport=httpx.MockTransport(
            Scripted(
                {QUESTION.question: _reply("Not sure [1].", [OTHER], [1])},
                rankings={QUESTION.question: [SOURCE, OTHER]},
            )
        ),
    )
    asked = ask(client, DATASET, QUESTION, CONFIGS[2])
    assert isinstance(asked, Asked)
    assert asked.outcome.passages == [True, False]
    assert asked.outcome.documents == [("parking.md", True), ("vpn.md", False)]
    assert not asked.cited_gold  # the answer itself cited the other page


def test_citing_only_other_pages_is_not_citing_gold() -> None:
    asked = _asked(_reply("It closes at 8pm [1].", [OTHER, SOURCE], [1]))
    assert asked.fact
    assert not asked.cited_gold


def test_a_citation_number_with_no_source_behind_it_cites_nothing() -> None:
    asked = _asked(_reply("It closes at 8pm [7].", [SOURCE], [7]))
    assert not asked.cited_gold


def test_a_declined_answer_is_not_grounded() -> None:
    asked = _asked(DECLINED)
    assert not asked.grounded
    assert asked.cited == ()
    assert not asked.cited_gold
    assert asked.record()["grounded"] is False


def test_a_reply_without_grounded_is_grounded_when_it_cites() -> None:
    # An older gateway: grounded was "cites something".
    assert _asked({"answer": "8pm [1]", "sources": [SOURCE], "cited": [1]}).grounded
    assert not _asked({"answer": "no idea", "sources": [SOURCE], "cited": []}).grounded


def _run(questions: tuple[Question, ...], replies: dict[str, dict[str, Any]]) -> ConfigResult:
    dataset = Dataset("tiny", Path("."), [], questions)
    return run_config(_scripted(replies), dataset, CONFIGS[2], lambda _: None)


def test_retrieval_is_scored_over_answerable_questions_and_answers_over_all() -> None:
    second = Question(
        "q2", "Where do I park?", (Gold("parking.md", "closes at 8pm"),), facts=("car park",)
    )
    result = _run(
        (QUESTION, second, UNANSWERABLE),
        {
            QUESTION.question: _reply("8pm [1]", [SOURCE], [1]),
            # Right page retrieved, but the system declined: a false decline.
            second.question: {**DECLINED, "sources": [SOURCE], "answer": "not the car park"},
            # The unanswerable question: declined, and its sources irrelevant.
        },
    )
    summary = result.summary
    assert [a.question.id for a in result.questions] == ["q1", "q2", "u1"]
    # The unanswerable question's (irrelevant) sources do not count as misses.
    assert summary["hit@1"] == 1.0
    assert summary["doc_mrr"] == 1.0
    # q2 declined: its answer mentions "car park" but does not count.
    assert summary["fact"] == 0.5
    assert summary["cited_gold"] == 1.0  # only q1 was answered, and it cites gold
    assert summary["false_decline"] == 0.5
    assert summary["declined"] == 1.0
    assert summary["n"] == 3.0
    assert summary["n_answerable"] == 2.0
    assert summary["n_answered"] == 1.0
    assert summary["n_unanswerable"] == 1.0


def test_a_run_without_unanswerable_questions_has_no_declined_figure() -> None:
    result = _run((QUESTION,), {QUESTION.question: _reply("8pm [1]", [SOURCE], [1])})
    assert math.isnan(result.summary["declined"])
    printed = table([result])
    row = printed.splitlines()[-1]
    assert row.split()[3] == MISSING  # fact, cited_gold, then declined
    assert "nan" not in row.lower()
    (json_row,) = json_rows([result], "all")
    assert json_row["declined"] is None
    assert json_row["fact"] == 1.0
    json.dumps(json_row, allow_nan=False)


def test_a_run_of_only_unanswerable_questions_has_no_retrieval_figures() -> None:
    result = _run((UNANSWERABLE,), {})
    assert all(math.isnan(result.summary[key]) for key in RANKING_KEYS)
    assert math.isnan(result.summary["fact"])
    assert math.isnan(result.summary["cited_gold"])
    assert result.summary["declined"] == 1.0
    assert result.summary["p50_ms"] > 0


def test_the_table_prints_retrieval_then_answers() -> None:
    result = _run((QUESTION, UNANSWERABLE), {QUESTION.question: _reply("8pm [1]", [SOURCE], [1])})
    skipped = ConfigResult("hybrid+hyde", skipped="LLM_PROVIDER is not set")
    lines = table([result, skipped]).splitlines()
    retrieval = lines.index("retrieval (answerable questions)")
    answers = next(n for n, line in enumerate(lines) if line.startswith("answers"))
    assert retrieval < answers
    assert lines[retrieval + 1].split()[:3] == ["configuration", "hit@1", "hit@5"]
    assert lines[answers + 1].split() == ["configuration", *ANSWER_COLUMNS]
    assert lines[retrieval + 3].split()[:3] == ["hybrid", "1.000", "1.000"]
    fact, cited_gold, declined, false_decline = lines[answers + 3].split()[1:5]
    assert (fact, cited_gold, declined, false_decline) == ("1.000", "1.000", "1.000", "0.000")
    skipped_rows = [line for line in lines if line.startswith("hybrid+hyde ")]
    assert [row.split(maxsplit=1)[1] for row in skipped_rows] == [
        "skipped: LLM_PROVIDER is not set"
    ] * 2
    assert headline(skipped) == "hybrid+hyde: skipped: LLM_PROVIDER is not set"
    assert headline(result).startswith("hybrid: hit@1 1.000  doc_hit@1 1.000  fact 1.000")


# --- --limit and --split --------------------------------------------------------


def _questions(answerable: int, unanswerable: int) -> Dataset:
    gold = (Gold("parking.md", "closes at 8pm"),)
    questions = [Question(f"q{n}", f"question {n}", gold) for n in range(answerable)]
    questions += [Question(f"u{n}", f"no answer {n}", ()) for n in range(unanswerable)]
    return Dataset("set", Path("."), [], tuple(questions))


def _ids(dataset: Dataset) -> list[str]:
    return [q.id for q in dataset.questions]


def test_a_limit_keeps_the_proportion_of_unanswerable_questions() -> None:
    # Unanswerable questions come last, as in the committed set: head(10)
    # would ask none of them.
    limited = sample(_questions(90, 50), 14)
    assert _ids(limited) == [f"q{n}" for n in range(9)] + [f"u{n}" for n in range(5)]


def test_a_small_limit_still_asks_one_of_each_kind() -> None:
    assert _ids(sample(_questions(90, 5), 2)) == ["q0", "u0"]
    assert _ids(sample(_questions(5, 90), 2)) == ["q0", "u0"]
    assert _ids(sample(_questions(90, 50), 1)) == ["q0"]


def test_a_limit_keeps_the_set_order_and_fills_from_the_other_kind() -> None:
    mixed = Dataset("set", Path("."), [], (UNANSWERABLE, QUESTION, *_questions(0, 3).questions))
    assert _ids(sample(mixed, 3)) == ["u1", "q1", "u0"]
    assert _ids(sample(_questions(1, 9), 4)) == ["q0", "u0", "u1", "u2"]
    assert _ids(sample(_questions(3, 0), 2)) == ["q0", "q1"]
    assert _ids(sample(_questions(3, 2), 10)) == ["q0", "q1", "q2", "u0", "u1"]


def _corpus(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "parking.md").write_text("# Parking\n\nThe car park closes at 8pm.\n")
    gold = [{"doc": "parking.md", "quote": "closes at 8pm"}]
    lines = [
        {"id": "q1", "question": "When does it close?", "gold": gold, "facts": ["8pm"],
         "split": "tune"},
        {"id": "q2", "question": "Closing time?", "gold": gold, "facts": ["8pm"],
         "split": "test"},
        {"id": "u1", "question": "Wifi password?", "gold": [], "split": "tune"},
        {"id": "u2", "question": "Canteen menu?", "gold": [], "split": "test"},
    ]  # fmt: skip
    (root / "questions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root


@pytest.fixture
def offline_run(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """``rag eval`` against the scripted gateway, corpus upload left out; the
    ids of the questions each configuration was asked."""
    asked: list[list[str]] = []

    def fake_run(
        base_url: str,
        dataset: Dataset,
        configs: Sequence[Config],
        *,
        say: Callable[[str], None],
        scored: Callable[[list[ConfigResult]], None],
    ) -> list[ConfigResult]:
        http = _scripted(
            {
                q.question: _reply("8pm [1]", [SOURCE], [1])
                for q in dataset.questions
                if q.answerable
            }
        )
        results: list[ConfigResult] = []
        for config in configs:
            results.append(run_config(http, dataset, config, say))
            asked.append([a.question.id for a in results[-1].questions])
            scored(results)
        return results

    monkeypatch.setattr(runner, "run", fake_run)
    return asked


@pytest.mark.parametrize(
    ("args", "ids"),
    [
        ([], ["q1", "q2", "u1", "u2"]),
        (["--split", "all"], ["q1", "q2", "u1", "u2"]),
        (["--split", "tune"], ["q1", "u1"]),
        (["--split", "test"], ["q2", "u2"]),
        (["--split", "test", "--limit", "1"], ["q2"]),
        (["--limit", "2"], ["q1", "u1"]),
    ],
)
def test_split_and_limit_choose_the_questions_asked(
    offline_run: list[list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    ids: list[str],
) -> None:
    dataset = _corpus(tmp_path / "set")
    out = tmp_path / "out.json"
    argv = ["eval", "--dataset", str(dataset), "--configs", "hybrid", "--json", str(out), *args]
    assert cli.run(argv) == 0
    assert offline_run == [ids]
    split = args[args.index("--split") + 1] if "--split" in args else "all"
    stdout = capsys.readouterr().out
    assert f"{len(ids)} questions (" in stdout.splitlines()[0]
    assert stdout.splitlines()[0].endswith(f"1 documents; split: {split}")
    (row,) = json.loads(out.read_text())
    assert row["split"] == split
    assert [q["id"] for q in row["questions"]] == ids
    assert {"fact", "cited_gold", "declined", "false_decline", "p50_ms", "p95_ms"} <= set(row)


def test_the_json_and_the_table_show_the_answer_figures(
    offline_run: list[list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    argv = [
        "eval",
        "--dataset",
        str(_corpus(tmp_path / "set")),
        "--configs",
        "dense,hybrid",
        "--json",
        str(out),
    ]
    assert cli.run(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == (
        "4 questions (2 answerable, 2 unanswerable), 1 documents; split: all"
    )
    assert "retrieval (answerable questions)" in captured.out
    assert "hybrid: hit@1 1.000" in captured.err
    rows = json.loads(out.read_text())
    assert [row["config"] for row in rows] == ["dense", "hybrid"]
    assert rows[1]["fact"] == 1.0
    assert rows[1]["declined"] == 1.0
    assert rows[1]["false_decline"] == 0.0
    u1 = rows[1]["questions"][2]
    assert (u1["id"], u1["split"], u1["answerable"], u1["grounded"]) == ("u1", "tune", False, False)
    assert u1["answer"] == DECLINED["answer"]


def test_an_unknown_split_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "--dataset", str(_corpus(tmp_path / "set")), "--split", "train"]
    assert cli.run(argv) == 2
    assert "--split" in capsys.readouterr().err
