"""``rag chat``: one question over POST /api/chat/stream, its tokens handed
on as they arrive, its sources and outcome collected. A connection that
drops mid-answer is resumed (GET /api/chat/stream/{X-Stream-ID} with the
last event's id as Last-Event-ID): the rest of the answer, once, in order."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from ragstream.client.errors import ClientError
from ragstream.client.session import Session

# Resumes of one answer, and the wait before each: well within the
# server's STREAM_RESUME_GRACE_SECONDS (20 s by default).
RESUMES = 5
RESUME_WAIT_SECONDS = 1.0


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


def sse_messages(lines: Iterable[str]) -> Iterator[tuple[str, str, str | None]]:
    """(event, data, id) of a text/event-stream's messages, each once its
    blank line came: a last one cut short by a dropped connection is not
    taken (it comes again on resuming)."""
    event, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data), event_id
            event, event_id, data = "message", None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("id:"):
            event_id = line[3:].removeprefix(" ")


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
    *,
    filters: dict[str, Any] | None = None,
) -> Answer:
    body: dict[str, Any] = {"message": question}
    optional: dict[str, Any] = {
        "top_k": top_k,
        "conversation_id": conversation_id,
        "stream_timeout": stream_timeout,
        "filters": filters,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    answer = Answer()
    reading = _Reading(answer, on_token, on_reset)
    with session.stream("POST", "/api/chat/stream", json=body) as response:
        answer.conversation_id = response.headers.get("X-Conversation-ID")
        stream_id = response.headers.get("X-Stream-ID")
        if reading.read(response):
            return answer
    for _ in range(RESUMES if stream_id else 0):
        time.sleep(RESUME_WAIT_SECONDS)
        headers = {"Last-Event-ID": reading.last_id} if reading.last_id else {}
        try:
            with session.stream(
                "GET", f"/api/chat/stream/{stream_id}", headers=headers
            ) as response:
                if reading.read(response):
                    return answer
        except ClientError as exc:
            answer.error = str(exc)  # unreachable (try again), or refused (the last word)
    answer.error = answer.error or "the stream ended before the answer was complete"
    return answer


@dataclass
class _Reading:
    """One answer's events, over one connection or several."""

    answer: Answer
    on_token: Callable[[str], None]
    on_reset: Callable[[], None]
    last_id: str | None = None

    def read(self, response: httpx.Response) -> bool:
        """Fold the response's events in; True once the stream is over,
        False if the connection dropped (or closed) before its end."""
        try:
            for event, raw, event_id in sse_messages(response.iter_lines()):
                self.last_id = event_id or self.last_id
                if not _apply(self.answer, event, json.loads(raw), self.on_token, self.on_reset):
                    return True
        except httpx.TransportError:
            pass
        return False
