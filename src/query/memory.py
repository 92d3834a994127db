"""Conversation memory for retrieval: a follow-up such as "and for
contractors?" retrieves nothing on its own, so it is turned into a question
that carries its topic before anything is searched."""

from __future__ import annotations

import re
from collections.abc import Sequence

import structlog

from query.llm.base import ChatModel, Message
from query.prompts import rewrite_messages
from shared.errors import Unavailable

log = structlog.get_logger(__name__)

MAX_TURNS = 3
MAX_ASSISTANT_CHARS = 2000
MAX_USER_CHARS = 1000
REWRITE_MAX_TOKENS = 128
# A follow-up this short ("why?", "and Berlin?") cannot carry its own topic.
_SHORT_WORDS = 3
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
_REFERRING = frozenset(
    "it its that this these those they them their theirs there he she him her his".split()
)
_CONTINUING = ("and ", "but ", "also ", "or ", "what about ", "how about ")
_PREAMBLE = re.compile(r"^\s*(?:standalone|rewritten)?\s*question\s*:\s*", re.IGNORECASE)
_QUOTES = "\"'\u201c\u201d\u2018\u2019`"


def recent_history(
    history: Sequence[Message],
    max_turns: int = MAX_TURNS,
    max_assistant_chars: int = MAX_ASSISTANT_CHARS,
) -> list[Message]:
    """The last ``max_turns`` exchanges, oldest first. Assistant text is capped
    at ``max_assistant_chars`` in all, the most recent answers first: a long
    answer mostly repeats its sources, and its opening says what it is about."""
    turns = [m for m in history if m.role in ("user", "assistant")][-2 * max_turns :]
    budget = max_assistant_chars
    kept: list[Message] = []
    for message in reversed(turns):
        content = message.content.strip()
        if message.role == "assistant":
            if budget <= 0:
                continue
            if len(content) > budget:
                content = content[:budget].rstrip() + " …"
            budget -= len(content)
        elif len(content) > MAX_USER_CHARS:
            content = content[:MAX_USER_CHARS].rstrip() + " …"
        kept.append(Message(message.role, content))
    return kept[::-1]


def looks_dependent(question: str) -> bool:
    """Whether the question probably leans on the conversation: very short,
    refers back (it, that, they, there, ...), or continues ("and ...",
    "what about ...")."""
    lowered = question.strip().lower().replace("\u2019", "'")
    words = _WORD.findall(lowered)
    return (
        len(words) <= _SHORT_WORDS
        or any(w.split("'")[0] in _REFERRING for w in words)  # it's, they're
        or lowered.startswith(_CONTINUING)
    )


def offline_standalone(question: str, history: Sequence[Message]) -> str:
    """Without a model: prefix a dependent follow-up with the earlier user
    questions it leans on (back to the first that stands on its own), so the
    search sees the topic words."""
    if not looks_dependent(question):
        return question
    earlier: list[str] = []
    for message in reversed(history):
        if message.role != "user" or not message.content.strip():
            continue
        earlier.append(message.content.strip())
        if not looks_dependent(message.content):
            break
    if not earlier:
        return question
    return " ".join([*reversed(earlier), question.strip()])


def _clean(reply: str) -> str:
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    return _PREAMBLE.sub("", lines[0]).strip().strip(_QUOTES).strip()


async def standalone_question(
    question: str,
    history: list[Message],
    model: ChatModel | None,
    *,
    max_turns: int = MAX_TURNS,
) -> str:
    """``question`` made understandable without the conversation ``history``
    (earlier user and assistant turns, most recent last). A first question is
    returned as it is, without asking the model."""
    recent = recent_history(history, max_turns)
    if not any(m.role == "user" for m in recent):
        return question
    if model is None:
        return offline_standalone(question, recent)
    try:
        reply = await model.complete(
            rewrite_messages(question, recent), max_tokens=REWRITE_MAX_TOKENS
        )
    except Unavailable as exc:
        log.warning("Question rewriting failed, using the offline rule", error=exc.message)
        return offline_standalone(question, recent)
    rewritten = _clean(reply)
    # An essay instead of a question means the model answered or rambled.
    if not rewritten or len(rewritten) > max(400, 3 * len(question)):
        log.warning("Question rewriting gave an unusable reply", chars=len(reply))
        return offline_standalone(question, recent)
    return rewritten
