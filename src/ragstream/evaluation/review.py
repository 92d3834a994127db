"""``rag eval --review-list``: the questions a tenant's users rated down,
as lines for a labelled set (``questions.jsonl``), to be labelled.

Each line has the question and, under ``review``, what the users said of
the answer; it has no ``gold`` on purpose: the loader refuses a line without
one (``dataset._gold``), so a question joins the set only once a person has
said where its answer is (or that the documents have none)."""

from __future__ import annotations

import hashlib
from typing import Any


def review_lines(rated_down: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per distinct question (whitespace and case aside), the most
    recently rated first, with every rating of it."""
    lines: dict[str, dict[str, Any]] = {}
    for entry in rated_down:
        key = " ".join(entry["question"].lower().split())
        line = lines.get(key)
        if line is None:
            digest = hashlib.sha256(key.encode()).hexdigest()[:10]
            line = lines[key] = {
                "id": f"review-{digest}",
                "question": entry["question"],
                "notes": "rated down: label gold (or [] if the documents cannot answer), facts",
                "review": [],
            }
        line["review"].append(
            {
                "rated_at": entry["updated_at"],
                "username": entry["username"],
                "comment": entry["comment"],
                "wrong_source": entry["wrong_source_ref"],
                "answer": entry["answer"],
                "conversation_id": entry["conversation_id"],
                "turn": entry["turn"],
            }
        )
    return list(lines.values())
