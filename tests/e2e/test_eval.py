"""`rag eval` against the running stack: a small labelled set uploaded
through the API, every configuration scored from the answers' sources."""

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
     "Expense claims must be filed within 30 days of the trip"),
    ("q2", "I forgot my VPN password, how do I reset it?", "vpn.md",
     "To reset your VPN password, open the self-service portal"),
    ("q3", "When does the visitor car park close?", "parking.md",
     "The visitor car park closes at 8pm"),
]  # fmt: skip


def _dataset(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text)
    lines = [
        json.dumps({"id": qid, "question": q, "gold": [{"doc": doc, "quote": quote}]})
        for qid, q, doc, quote in QUESTIONS
    ]
    (root / "questions.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _eval(gateway: Component, dataset: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragstream", "eval", "--base-url", gateway.base_url or "",
         "--dataset", str(dataset), "--json", str(out),
         "--configs", "dense,lexical,hybrid,hybrid+cross-encoder,hybrid+hyde"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_eval_scores_each_configuration_through_the_api(gateway: Component, tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "tiny")
    result = _eval(gateway, dataset, tmp_path / "first.json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "indexed 3/3 documents" in result.stderr
    assert "3 questions, 3 documents" in result.stdout
    rows = {row["config"]: row for row in json.loads((tmp_path / "first.json").read_text())}
    assert list(rows) == ["dense", "lexical", "hybrid", "hybrid+cross-encoder", "hybrid+hyde"]
    for name in ("dense", "lexical", "hybrid", "hybrid+cross-encoder"):
        # Three unrelated one-paragraph pages: each question's page comes first.
        assert rows[name]["skipped"] is None
        assert rows[name]["doc_hit@1"] == 1.0, rows[name]
        assert rows[name]["hit@1"] == 1.0, rows[name]
        assert rows[name]["p50_ms"] > 0
    # No generator on this stack: the gateway's refusal, not a score.
    assert "LLM_PROVIDER" in rows["hybrid+hyde"]["skipped"]

    # A second run signs in as the same user and finds the documents indexed.
    again = _eval(gateway, dataset, tmp_path / "second.json")
    assert again.returncode == 0, again.stderr[-3000:]
    second = {row["config"]: row for row in json.loads((tmp_path / "second.json").read_text())}
    assert second["hybrid"]["doc_mrr"] == rows["hybrid"]["doc_mrr"]
