"""Reranking by asking the chat model to grade each candidate's relevance:
one call for all candidates, grades 0 to 10 as a small JSON object."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import replace

import structlog

from query.llm.base import ChatModel
from query.prompts import relevance_messages
from query.retrieval import Owner
from shared.errors import Unavailable
from shared.storage.vectorstore import Hit

log = structlog.get_logger(__name__)

MAX_GRADE = 10.0
# Any "n": grade pair, for replies that are not quite JSON.
_PAIR = re.compile(r"[\"']?(\d+)[\"']?\s*[:=]\s*[\"']?(\d+(?:\.\d+)?)")
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _from_json(reply: str) -> Mapping[object, object] | None:
    match = _OBJECT.search(reply)  # past any code fence or preamble
    if not match:
        return None
    try:
        data = json.loads(match.group())
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    # {"grades": {"1": 7}} and the like.
    if len(data) == 1:
        (inner,) = data.values()
        if isinstance(inner, dict):
            return inner
    return data


def parse_grades(reply: str, n: int) -> dict[int, float]:
    """Grades by candidate number (1 to ``n``), clamped to 0..10; numbers out
    of range and values that are not numbers are left out."""
    data = _from_json(reply)
    pairs: list[tuple[object, object]] = (
        list(data.items()) if data is not None else _PAIR.findall(reply)
    )
    grades: dict[int, float] = {}
    for key, value in pairs:
        number = _number(key)
        grade = _number(value)
        if number is None or grade is None or not number.is_integer():
            continue
        if 1 <= number <= n and math.isfinite(grade):
            grades[int(number)] = min(max(grade, 0.0), MAX_GRADE)
    return grades


def _clip(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[:max_chars].rstrip() + " …"


class LLMReranker:
    """The ``k`` best-graded candidates, scored by their grade (0 to 10). A
    candidate the model did not grade counts as 0; equal grades keep the
    incoming order. When the model fails or its reply holds no grade, the
    incoming order stands, scores unchanged."""

    name = "llm"

    def __init__(self, model: ChatModel, max_chars: int) -> None:
        self.model = model
        self.max_chars = max_chars

    async def rerank(
        self, question: str, hits: list[Hit], k: int, owner: Owner | None = None
    ) -> list[Hit]:
        if not hits or k <= 0:
            return []
        messages = relevance_messages(question, [_clip(h.text, self.max_chars) for h in hits])
        try:
            reply = await self.model.complete(messages, max_tokens=32 + 10 * len(hits))
        except Unavailable as exc:
            log.warning("LLM reranking failed, keeping the retrieval order", error=exc.message)
            return hits[:k]
        grades = parse_grades(reply, len(hits))
        if not grades:
            log.warning("LLM reranking reply had no grades, keeping the order", chars=len(reply))
            return hits[:k]
        graded = [(grades.get(n, 0.0), n) for n in range(1, len(hits) + 1)]
        order = sorted(graded, key=lambda pair: (-pair[0], pair[1]))[:k]
        return [replace(hits[n - 1], score=grade) for grade, n in order]
