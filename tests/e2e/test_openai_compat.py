"""The OpenAI-compatible API, driven by the official ``openai`` SDK against the
real gateway and workers: whole and streamed answers from the caller's own
documents with their sources, the model list, OpenAI-shaped errors the SDK
raises as its exceptions, tenancy, conversations sent as ``messages``, and a
stream that stalls mid-answer ending visibly instead of hanging."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from shared.contracts.events import Source
from tests.support.api import User, new_user, upload, wait_for_status
from tests.support.openai_server import FakeOpenAI, RunningServer
from tests.support.processes import Component, side_stack

HANDBOOK = b"""# Bicycle allowance

Every employee may claim a bicycle allowance of 37 euros per month, code name PELICAN-77.
The allowance is paid with the salary of the following month.
"""
LEAVE = b"""# Parental leave

Parents receive sixteen weeks of paid parental leave after a birth or an adoption.
The leave can be divided into at most three blocks, taken before the child turns two.
"""
LAPTOPS = b"""# Equipment

Every engineer receives a laptop on the first day. The budget can be split across a
laptop and a monitor. Broken equipment is replaced by the IT desk within two days.
"""
SECRET = b"The merger code name is OSPREYWING and the price is 913 million."
QUESTION = "How much is the bicycle allowance per month?"


def sdk(gateway: Component, key: str) -> AsyncOpenAI:
    # No retries: each test sees the gateway's first answer.
    return AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0, timeout=60)


async def indexed(client: httpx.AsyncClient, user: User, name: str, content: bytes) -> str:
    doc_id = await upload(client, user, name, content)
    assert (await wait_for_status(client, user, doc_id))["status"] == "indexed"
    return doc_id


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


async def raw_stream(
    client: httpx.AsyncClient, user: User, body: dict[str, Any]
) -> tuple[httpx.Response, str]:
    async with client.stream(
        "POST", "/v1/chat/completions", headers=user.headers, json=body, timeout=60
    ) as response:
        return response, (await response.aread()).decode()


def data_lines(text: str) -> list[str]:
    """The ``data:`` payloads; fails on anything but data, pings and blanks."""
    payloads = []
    for line in text.split("\n"):
        assert not line.startswith("event:"), line
        if line.startswith("data: "):
            payloads.append(line.removeprefix("data: "))
        else:
            assert line == "" or line.startswith(":"), line
    return payloads


@pytest.fixture(scope="module")
async def owner(gateway: Component) -> AsyncIterator[tuple[User, str]]:
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client, "oai")
        yield user, await indexed(client, user, "handbook.md", HANDBOOK)


async def test_a_whole_answer_comes_from_the_callers_document_with_sources(
    client: httpx.AsyncClient, gateway: Component, owner: tuple[User, str]
) -> None:
    user, doc_id = owner
    completion = await sdk(gateway, user.token).chat.completions.create(
        model="ragstream", messages=ask(QUESTION)
    )
    assert completion.object == "chat.completion"
    assert completion.model == "ragstream"
    assert completion.id.startswith("chatcmpl-")
    [choice] = completion.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert "37 euros" in (choice.message.content or "")
    extra = completion.model_extra or {}
    sources = [Source.model_validate(s) for s in extra["sources"]]
    assert sources[0].document_id == uuid.UUID(doc_id)
    assert extra["cited"] and all(1 <= n <= len(sources) for n in extra["cited"])
    usage = completion.usage
    assert usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    # The same question through /api/chat: the same answer and sources.
    native = await client.post("/api/chat", headers=user.headers, json={"message": QUESTION})
    assert native.status_code == 200, native.text
    assert native.json()["answer"] == choice.message.content
    assert native.json()["sources"] == extra["sources"]


async def test_a_streamed_answer_is_the_whole_answer_in_chunks_ending_properly(
    client: httpx.AsyncClient, gateway: Component, owner: tuple[User, str]
) -> None:
    user, doc_id = owner
    openai_client = sdk(gateway, user.token)
    whole = await openai_client.chat.completions.create(model="ragstream", messages=ask(QUESTION))
    stream = await openai_client.chat.completions.create(
        model="ragstream",
        messages=ask(QUESTION),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1 and {c.model for c in chunks} == {"ragstream"}
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finishing] == ["stop"]
    assert finishing[0] is chunks[-2]
    sources = (finishing[0].model_extra or {})["sources"]
    assert sources == (whole.model_extra or {})["sources"]
    assert sources[0]["document_id"] == doc_id
    # Asked for: usage on a last chunk of its own, as OpenAI sends it.
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]

    # On the wire: data lines only, JSON chunks, then [DONE] last.
    body = {"model": "ragstream", "messages": ask(QUESTION), "stream": True}
    response, raw = await raw_stream(client, user, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = data_lines(raw)
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    parsed = [json.loads(p) for p in payloads[:-1]]
    assert "usage" in parsed[-1] and parsed[-1]["choices"][0]["finish_reason"] == "stop"
    assert "".join(p["choices"][0]["delta"].get("content", "") for p in parsed) == text


async def test_the_model_list_and_unknown_models(
    gateway: Component, owner: tuple[User, str]
) -> None:
    openai_client = sdk(gateway, owner[0].token)
    models = await openai_client.models.list()
    assert [m.id for m in models.data] == ["ragstream"]
    assert models.data[0].object == "model"
    assert (await openai_client.models.retrieve("ragstream")).id == "ragstream"
    with pytest.raises(openai.NotFoundError) as missing:
        await openai_client.models.retrieve("gpt-4o")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as refused:
        await openai_client.chat.completions.create(model="gpt-4o", messages=ask(QUESTION))
    assert refused.value.code == "model_not_found"
    assert "ragstream" in refused.value.message


async def test_credentials_are_required_and_api_keys_work(
    client: httpx.AsyncClient, gateway: Component, owner: tuple[User, str]
) -> None:
    for bad in ("not-a-token", owner[0].token + "x", "rsk_" + "0" * 40):
        with pytest.raises(openai.AuthenticationError) as refused:
            await sdk(gateway, bad).chat.completions.create(
                model="ragstream", messages=ask(QUESTION)
            )
        assert refused.value.status_code == 401
        assert refused.value.body["type"] == "authentication_error"  # type: ignore[index]
    bare = await client.get("/v1/models")
    assert bare.status_code == 401
    assert bare.json()["error"]["message"] == "Not authenticated"
    assert bare.headers["www-authenticate"] == "Bearer"

    created = await client.post("/api/keys", headers=owner[0].headers, json={"name": "sdk"})
    assert created.status_code == 201, created.text
    answer = await sdk(gateway, created.json()["key"]).chat.completions.create(
        model="ragstream", messages=ask(QUESTION)
    )
    assert "37 euros" in (answer.choices[0].message.content or "")


BAD_REQUESTS: list[tuple[dict[str, Any], str]] = [
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "assistant", "content": "hello"}]}, "last message"),
    ({"messages": ask("   ")}, "messages[0].content"),
    ({"messages": ask("x" * 8001)}, "messages[0].content"),
    ({"messages": ask("nul \x00 inside")}, "NUL"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a\x00b"}]}]}, "NUL"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "text parts"),
    ({"messages": [*ask("hi"), {"role": "tool", "content": "42"}, *ask("and?")]}, "tool"),
    ({"messages": ask("hi"), "n": 2}, "n"),
    ({"messages": ask("hi"), "response_format": {"type": "json_object"}}, "response_format"),
    ({"messages": ask("hi"), "retrieval": "psychic"}, "retrieval"),
    ({"messages": ask("hi"), "top_k": 0}, "top_k"),
    ({"messages": ask("hi"), "hyde": True}, "LLM_PROVIDER"),
    ({"messages": ask("hi"), "document_ids": ["nope"]}, "document_ids"),
]


@pytest.mark.parametrize(("fields", "reason"), BAD_REQUESTS)
async def test_bad_input_is_a_bad_request_with_its_reason(
    gateway: Component, owner: tuple[User, str], fields: dict[str, Any], reason: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk(gateway, owner[0].token).chat.completions.create(
            model="ragstream",
            messages=fields.pop("messages"),
            extra_body=fields,
        )
    assert refused.value.status_code == 400
    assert reason in refused.value.message
    assert refused.value.body["type"] == "invalid_request_error"  # type: ignore[index]


async def test_a_body_that_is_not_json_is_a_bad_request(
    client: httpx.AsyncClient, owner: tuple[User, str]
) -> None:
    response = await client.post(
        "/v1/chat/completions", headers=owner[0].headers, content=b"{not json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "JSON" in response.json()["error"]["message"]


async def test_another_tenant_cannot_get_the_document_through_this_api(
    client: httpx.AsyncClient, gateway: Component
) -> None:
    victim = await new_user(client, "victim")
    doc_id = await indexed(client, victim, "merger.txt", SECRET)
    question = "What is the merger code name and the price?"
    mine = await sdk(gateway, victim.token).chat.completions.create(
        model="ragstream", messages=ask(question)
    )
    # The control: the question finds the secret for its owner.
    assert "OSPREYWING" in (mine.choices[0].message.content or "")

    attacker = sdk(gateway, (await new_user(client, "attacker")).token)
    for extra in ({}, {"document_ids": [doc_id]}):
        whole = await attacker.chat.completions.create(
            model="ragstream", messages=ask(question), extra_body=extra
        )
        stream = await attacker.chat.completions.create(
            model="ragstream", messages=ask(question), extra_body=extra, stream=True
        )
        chunks = [c.model_dump_json() async for c in stream]
        seen = whole.model_dump_json() + "".join(chunks)
        assert "OSPREYWING" not in seen and "913 million" not in seen
        assert doc_id not in seen


async def test_earlier_messages_are_the_conversation(
    client: httpx.AsyncClient, gateway: Component
) -> None:
    user = await new_user(client)
    leave = await indexed(client, user, "leave.md", LEAVE)
    equipment = await indexed(client, user, "equipment.md", LAPTOPS)
    openai_client = sdk(gateway, user.token)
    lexical = {"retrieval": "lexical"}

    alone = await openai_client.chat.completions.create(
        model="ragstream", messages=ask("Can it be split?"), extra_body=lexical
    )
    # Asked alone, the follow-up's one content word points at the equipment budget.
    assert (alone.model_extra or {})["sources"][0]["document_id"] == equipment

    conversation = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "How long is parental leave?"},
        {"role": "assistant", "content": "Parents receive sixteen weeks of paid leave [1]."},
        {"role": "user", "content": "Can it be split?"},
    ]
    follow_up = await openai_client.chat.completions.create(
        model="ragstream",
        messages=conversation,
        extra_body=lexical,  # type: ignore[arg-type]
    )
    assert (follow_up.model_extra or {})["sources"][0]["document_id"] == leave
    assert "sixteen weeks" in (follow_up.choices[0].message.content or "")


# --- a stream that stalls mid-answer ---------------------------------------

STALL_TIMEOUT = 2.0
# How long the model goes quiet: well past STALL_TIMEOUT.
STALL_DELAY = 2.5 * STALL_TIMEOUT
PIECES = [f"word{i} " for i in range(40)]


def _as_relayed(n: int) -> list[str]:
    """The first ``n`` pieces a client gets of PIECES (n < len(PIECES))."""
    return ["word0", *(f" word{i}" for i in range(1, n))]


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeOpenAI]:
    with RunningServer(FakeOpenAI(reply=lambda messages: PIECES, token_delay=0.05)) as fake:
        yield fake


@pytest.fixture(scope="module")
def stalling_gateway(
    app_env: dict[str, str], log_dir: Path, llm: FakeOpenAI, workers: list[Component]
) -> Iterator[Component]:
    """A query worker whose model the test can stall, and a gateway that
    waits STALL_TIMEOUT seconds for an event and lets a user one stream."""
    settings = {
        "LLM_PROVIDER": "openai",
        "LLM_MODEL": "fake-model",
        "OPENAI_BASE_URL": llm.base_url,
        "TOKEN_COALESCE_WORDS": "1",
        "STREAM_TIMEOUT": str(STALL_TIMEOUT),
        "MAX_CONCURRENT_STREAMS": "1",
        # A stall is tested, not relevance: every question reaches the model.
        "LLM_ANSWER_UNGROUNDED": "true",
    }
    with side_stack(app_env, log_dir, "oai", **settings) as (gateway, _):
        yield gateway


async def read_stalling(
    stream: AsyncIterator[Any], llm: FakeOpenAI, at_first_word: Any, text: list[str]
) -> None:
    """Read a streamed answer's words into ``text``; at its first word the
    model goes quiet for longer than the gateway waits, and
    ``at_first_word()`` runs."""
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
            if len(text) == 1:
                llm.token_delay = STALL_DELAY
                await at_first_word()


async def test_a_stream_that_stalls_mid_answer_ends_with_an_error_and_done(
    client: httpx.AsyncClient, stalling_gateway: Component, llm: FakeOpenAI
) -> None:
    user = await new_user(client)
    await indexed(client, user, "handbook.md", HANDBOOK)
    openai_client = sdk(stalling_gateway, user.token)
    text: list[str] = []

    async def one_stream_at_a_time() -> None:
        # While the stream is open, the user's one stream slot is taken.
        with pytest.raises(openai.RateLimitError) as limited:
            await openai_client.chat.completions.create(model="ragstream", messages=ask(QUESTION))
        assert int(limited.value.response.headers["retry-after"]) >= 1
        assert limited.value.body["code"] == "too_many_requests"  # type: ignore[index]

    llm.token_delay = 0.05
    started = time.monotonic()
    stream = await openai_client.chat.completions.create(
        model="ragstream", messages=ask(QUESTION), stream=True
    )
    with pytest.raises(openai.APIError) as ended:
        await read_stalling(stream, llm, one_stream_at_a_time, text)
    elapsed = time.monotonic() - started
    assert ended.value.message == f"no answer for {STALL_TIMEOUT:g} seconds"
    assert ended.value.body == {  # type: ignore[comparison-overlap]
        "message": ended.value.message,
        "type": "timeout",
        "param": None,
        "code": "timeout",
    }
    assert elapsed < STALL_TIMEOUT + 5
    # Each word as the model sent it, its trailing space sent with the next
    # one (the worker holds a space back until it knows no "[n]" follows).
    assert text[0] == "word0" and text == _as_relayed(len(text))

    # On the wire: the role, words, the error, then [DONE]; and the slot is free again.
    llm.token_delay = 0.05
    body = {"model": "ragstream", "messages": ask(QUESTION), "stream": True}
    lines: list[str] = []
    http = httpx.AsyncClient(base_url=stalling_gateway.base_url or "", timeout=30)
    async with (
        http,
        http.stream("POST", "/v1/chat/completions", headers=user.headers, json=body) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            lines.append(line)
            if '"content": "word' in line:
                llm.token_delay = STALL_DELAY
    llm.token_delay = 0.05
    payloads = data_lines("\n".join(lines))
    assert payloads[-1] == "[DONE]"
    assert json.loads(payloads[-2])["error"]["code"] == "timeout"
    assert json.loads(payloads[0])["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert json.loads(payloads[1])["choices"][0]["delta"] == {"content": "word0"}
    words = [json.loads(p)["choices"][0]["delta"]["content"] for p in payloads[1:-2]]
    assert words == _as_relayed(len(words)) and 1 <= len(words) < len(PIECES)
