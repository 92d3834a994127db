"""The OpenAI-compatible API's pure parts: which messages become the
request's history, and how relay events become OpenAI's stream chunks."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest

from gateway.openai_models import ChatMessage, CompletionRequest
from gateway.routes.openai_compat import Completion, chunks, history, to_chat
from gateway.streams.relay import RelayEvent, StreamEnded, StreamTimeout
from shared.config import Settings
from shared.contracts.events import DoneReply, ErrorReply, Source, SourcesReply, TokenReply, Turn
from shared.errors import InvalidInput

ENVELOPE = {
    "correlation_id": "req-1",
    "stream_id": "stream-0001",
    "tenant_id": uuid4(),
    "user_id": uuid4(),
    "conversation_id": uuid4(),
}
SOURCE = Source(
    n=1, document_id=uuid4(), filename="a.md", chunk_index=0, score=0.5, snippet="s", text="s t"
)


def messages(*pairs: tuple[str, Any]) -> list[ChatMessage]:
    return [ChatMessage.model_validate({"role": r, "content": c}) for r, c in pairs]


def test_history_keeps_the_last_exchanges_of_users_and_assistants() -> None:
    earlier = messages(
        ("system", "Be brief."),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
        ("assistant", None),  # a tool-calling turn has no text: nothing to keep
        ("developer", "Use markdown."),
        ("user", [{"type": "text", "text": "q3"}, {"type": "text", "text": "more"}]),
        ("assistant", "a3" + "x" * 9000),
    )
    turns = history(earlier, memory_turns=2)
    assert [(t.role, t.content[:7]) for t in turns] == [
        ("assistant", "a1"),
        ("user", "q2"),
        ("user", "q3\nmore"),
        ("assistant", "a3xxxxx"),
    ]
    assert len(turns[-1].content) == 8000
    assert history(earlier, memory_turns=0) == []
    assert history(earlier, memory_turns=20)[0] == Turn(role="user", content="q1")


def test_the_question_is_the_last_user_message_with_the_extensions() -> None:
    body = CompletionRequest.model_validate(
        {
            "model": "ragstream",
            "top_k": 3,
            "retrieval": "lexical",
            "temperature": 0.2,
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "user", "content": "  second  "},
            ],
        }
    )
    chat, turns = to_chat(body, Settings())
    assert chat.message == "second"
    assert (chat.top_k, chat.retrieval, chat.hyde) == (3, "lexical", None)
    assert turns == [Turn(role="user", content="first")]


@pytest.mark.parametrize(
    ("last", "reason"),
    [
        ({"role": "assistant", "content": "x"}, "last message must be the user's question"),
        ({"role": "user", "content": ""}, "messages[0].content"),
        ({"role": "user", "content": [{"type": "input_audio"}]}, "only text parts"),
    ],
)
def test_a_message_that_asks_nothing_is_refused(last: dict[str, Any], reason: str) -> None:
    body = CompletionRequest.model_validate({"model": "ragstream", "messages": [last]})
    with pytest.raises(InvalidInput, match=re.escape(reason)):
        to_chat(body, Settings())


async def _events(*events: RelayEvent) -> AsyncIterator[RelayEvent]:
    for event in events:
        yield event


async def _render(*events: RelayEvent, usage_chunk: bool = False) -> list[Any]:
    reply = Completion("chatcmpl-1", "ragstream", 1, prompt_tokens=5)
    out = [m["data"] async for m in chunks(reply, _events(*events), usage_chunk=usage_chunk)]
    return [json.loads(d) if d != "[DONE]" else d for d in out]


async def test_an_answer_streams_as_role_tokens_stop_then_done() -> None:
    rendered = await _render(
        SourcesReply(**ENVELOPE, seq=0, sources=[SOURCE]),
        TokenReply(**ENVELOPE, seq=1, text="Yes "),
        TokenReply(**ENVELOPE, seq=2, text="[1]."),
        DoneReply(**ENVELOPE, seq=3, cited=[1]),
    )
    first, yes, cite, last, done = rendered
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [yes["choices"][0]["delta"], cite["choices"][0]["delta"]] == [
        {"content": "Yes "},
        {"content": "[1]."},
    ]
    assert last["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert last["sources"] == [SOURCE.model_dump(mode="json")] and last["cited"] == [1]
    assert last["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert done == "[DONE]"
    assert {c["id"] for c in rendered[:-1]} == {"chatcmpl-1"}
    assert {c["object"] for c in rendered[:-1]} == {"chat.completion.chunk"}


async def test_usage_asked_for_comes_on_a_chunk_of_its_own() -> None:
    rendered = await _render(
        TokenReply(**ENVELOPE, seq=0, text="ok"), DoneReply(**ENVELOPE, seq=1), usage_chunk=True
    )
    last, usage, done = rendered[-3:]
    assert "usage" not in last and last["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 1
    assert done == "[DONE]"


@pytest.mark.parametrize(
    ("ending", "message", "code"),
    [
        (StreamTimeout(2.5), "no answer for 2.5 seconds", "timeout"),
        (StreamEnded("shutdown"), "this server is restarting; please ask again", "unavailable"),
        (ErrorReply(**ENVELOPE, seq=1, message="failed"), "failed", "unavailable"),
    ],
)
async def test_a_failure_ends_the_stream_with_an_error_then_done(
    ending: RelayEvent, message: str, code: str
) -> None:
    *_, error, done = await _render(TokenReply(**ENVELOPE, seq=0, text="Half "), ending)
    assert error["error"]["message"] == message and error["error"]["code"] == code
    assert done == "[DONE]"
