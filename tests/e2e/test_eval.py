"""`rag eval` against the running stack: a small labelled set uploaded
through the API, every configuration scored from the answers' sources and
from the answers themselves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.processes import Component

DOCS = {
    "expenses.md": "# Expenses\n\nExpense claims must be filed within 30 days of the trip, "
    "with the receipts attached.\n",
    "vpn.md": "# Remote access\n\nTo reset your VPN password, open the self-service portal "
    "and choose Remote access.\n",
    "parking.md": "# Parking\n\nThe visitor car park closes at 8pm and the barrier code is 4471.\n",
}
QUESTIONS = [
    ("q1", "How long do I have to file an expense claim?", "expenses.md",
     "Expense claims must be filed within 30 days of the trip", "30 days", "tune"),
    ("q2", "I forgot my VPN password, how do I reset it?", "vpn.md",
     "To reset your VPN password, open the self-service portal", "self-service portal", "test"),
    ("q3", "When does the visitor car park close?", "parking.md",
     "The visitor car park closes at 8pm", "8pm", "test"),
]  # fmt: skip
# Nothing in the three pages answers it: the system should decline.
UNANSWERABLE = ("u1", "What is the capital of France?", "tune")
ANSWER_FIGURES = ("fact", "cited_gold", "declined", "false_decline")


def _dataset(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text)
    lines = [
        json.dumps(
            {
                "id": qid,
                "question": q,
                "gold": [{"doc": doc, "quote": quote}],
                "facts": [fact],
                "split": split,
            }
        )
        for qid, q, doc, quote, fact, split in QUESTIONS
    ]
    uid, question, split = UNANSWERABLE
    lines.append(json.dumps({"id": uid, "question": question, "gold": [], "split": split}))
    (root / "questions.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _eval(
    gateway: Component, dataset: Path, out: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ragstream",
            "eval",
            "--base-url",
            gateway.base_url or "",
            "--dataset",
            str(dataset),
            "--json",
            str(out),
            "--configs",
            "dense,lexical,hybrid,hybrid+cross-encoder,hybrid+hyde",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_eval_scores_each_configuration_through_the_api(gateway: Component, tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "tiny")
    result = _eval(gateway, dataset, tmp_path / "first.json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "indexed 3/3 documents" in result.stderr
    assert result.stdout.startswith(
        "4 questions (3 answerable, 1 unanswerable), 3 documents; split: all\n"
    )
    assert "retrieval (answerable questions)" in result.stdout
    heads = [
        line.split() for line in result.stdout.splitlines() if line.startswith("configuration")
    ]
    answers_head = heads[-1]
    assert answers_head == ["configuration", *ANSWER_FIGURES, "p50_ms", "p95_ms"]
    rows = {row["config"]: row for row in json.loads((tmp_path / "first.json").read_text())}
    assert list(rows) == ["dense", "lexical", "hybrid", "hybrid+cross-encoder", "hybrid+hyde"]
    for name in ("dense", "lexical", "hybrid", "hybrid+cross-encoder"):
        row = rows[name]
        # Three unrelated one-paragraph pages: each question's page comes first
        # (the unanswerable question's closest passages are not scored).
        assert row["skipped"] is None
        assert row["doc_hit@1"] == 1.0, row
        assert row["hit@1"] == 1.0, row
        assert row["p50_ms"] > 0
        assert (row["n"], row["n_answerable"], row["n_unanswerable"]) == (4, 3, 1)
        # Without a generator the answer quotes the passage it cites, so it
        # holds the fact and cites the gold page; the off-topic one is declined.
        assert row["fact"] == 1.0, row
        assert row["cited_gold"] == 1.0, row
        assert row["false_decline"] == 0.0, row
        assert row["declined"] == 1.0, row
        records = {q["id"]: q for q in row["questions"]}
        assert list(records) == ["q1", "q2", "q3", "u1"]
        assert records["u1"]["grounded"] is False and records["u1"]["cited"] == []
        assert records["q3"]["split"] == "test" and records["q3"]["grounded"] is True
        assert "8pm" in records["q3"]["answer"]
    # No generator on this stack: the gateway's refusal, not a score.
    assert "LLM_PROVIDER" in rows["hybrid+hyde"]["skipped"]

    # A second run signs in as the same user and finds the documents indexed;
    # --split asks only that half.
    again = _eval(gateway, dataset, tmp_path / "second.json", "--split", "test")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "indexed 3/3 documents" in again.stderr
    assert again.stdout.startswith(
        "2 questions (2 answerable, 0 unanswerable), 3 documents; split: test\n"
    )
    second = {row["config"]: row for row in json.loads((tmp_path / "second.json").read_text())}
    assert second["hybrid"]["doc_mrr"] == rows["hybrid"]["doc_mrr"]
    assert [q["id"] for q in second["hybrid"]["questions"]] == ["q2", "q3"]
    # No unanswerable question in this half: no figure, not a made-up one.
    assert second["hybrid"]["declined"] is None
