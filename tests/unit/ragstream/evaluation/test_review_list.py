"""``rag eval --review-list``: one line per question rated down, every
rating of it kept, and no ``gold``, so it cannot join a set unlabelled."""

from __future__ import annotations

from typing import Any

import pytest

from ragstream.evaluation.dataset import DatasetError, _question
from ragstream.evaluation.review import review_lines


def rating(question: str, comment: str | None, turn: int) -> dict[str, Any]:
    return {
        "question": question,
        "updated_at": f"2026-12-06T18:0{turn}:00Z",
        "username": "ana",
        "comment": comment,
        "wrong_source_ref": None,
        "answer": "…",
        "conversation_id": "c",
        "turn": turn,
    }


def test_one_line_per_question_with_every_rating() -> None:
    lines = review_lines(
        [
            rating("When does it open?", "wrong hours", 3),
            rating("Who books hotels?", None, 2),
            rating("  when does it  OPEN? ", "still wrong", 1),
        ]
    )
    assert [line["question"] for line in lines] == ["When does it open?", "Who books hotels?"]
    assert [r["comment"] for r in lines[0]["review"]] == ["wrong hours", "still wrong"]
    assert len({line["id"] for line in lines}) == 2
    for line in lines:
        with pytest.raises(DatasetError, match="'gold'"):
            _question(line)
