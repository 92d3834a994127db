"""``rag chat``: one question over POST /api/chat/stream, its tokens handed
on as they arrive, its sources and outcome collected."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ragstream.client.session import Session


@dataclass
class Answer:
    text: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)
    conversation_id: str | None = None
    cited: list[int] = field(default_factory=list)
    # False when the documents do not answer the question: the answer says so,
    # nothing is cited, and the sources are only the closest passages.
    grounded: bool = True
    error: str | None = None  # an error or timeout event: no complete answer
    turn: int | None = None  # the answer's turn in its conversation (an older server: none)

    def as_json(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "sources": self.sources,
            "conversation_id": self.conversation_id,
            "cited": self.cited,
            "grounded": self.grounded,
            "error": self.error,
            "turn": self.turn,
        }


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream; comments (pings) skipped."""
    event = "message"
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield event, "\n".join(data)


def _apply(
    answer: Answer,
    event: str,
    data: Any,
    on_token: Callable[[str], None],
    on_reset: Callable[[], None] = lambda: None,
) -> bool:
    """Folds one event into ``answer``; False once the stream is over."""
    if event == "token":
        answer.text += data["text"]
        on_token(data["text"])
    elif event == "reset":
        # The worker writing the answer was lost; another starts it over.
        answer.text, answer.sources = "", []
        on_reset()
    elif event == "sources":
        answer.sources = list(data)
    elif event == "done":
        answer.conversation_id = data.get("conversation_id")
        answer.cited = list(data.get("cited") or [])
        # An older server sends no "grounded": its answers are grounded.
        answer.grounded = data.get("grounded") is not False
        answer.turn = data.get("turn")
        return False
    elif event in ("error", "timeout"):
        answer.error = str(data.get("message") or event)
        return False
    return True


def ask(
    session: Session,
    question: str,
    top_k: int | None,
    conversation_id: str | None,
    on_token: Callable[[str], None],
    stream_timeout: float | None = None,
    on_reset: Callable[[], None] = lambda: None,
) -> Answer:
    body: dict[str, Any] = {"message": question}
    optional: dict[str, Any] = {
        "top_k": top_k,
        "conversation_id": conversation_id,
        "stream_timeout": stream_timeout,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    answer = Answer()
    with session.stream("POST", "/api/chat/stream", json=body) as response:
        answer.conversation_id = response.headers.get("X-Conversation-ID")
        for event, raw in sse_events(response.iter_lines()):
            if not _apply(answer, event, json.loads(raw), on_token, on_reset):
                return answer
    answer.error = answer.error or "the stream ended before the answer was complete"
    return answer
