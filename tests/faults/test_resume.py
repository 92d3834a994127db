"""Resumable streams through real gateways and workers: the TCP connection
of a chat is cut mid-answer (a proxy in between resets it) and the client
resumes with the last event's id, on the same gateway or the other of two;
after the grace the answer is found cancelled; another user's token finds
nothing. Answers come from a local OpenAI-compatible server, slowed per
token so that a cut lands mid-answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import sys
import time
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.conftest import FaultStack
from tests.faults.test_streams import (
    TERMINAL,
    expected_text,
    metric,
    script,
    start_stack,
    user_with_document,
    worker_metrics,
)
from tests.support.api import PASSWORD, User, new_user
from tests.support.openai_server import FakeOpenAI, RunningServer
from tests.support.processes import Component, free_port

RAG = str(Path(sys.executable).parent / "rag")


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeOpenAI]:
    with RunningServer(FakeOpenAI(reply=script)) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


class Cutter:
    """A TCP proxy to a gateway whose connections can be cut: reset, as a
    network that drops them would leave the gateway's side."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self._target = (host, int(port))
        self.port = free_port()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Cutter:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()

    async def _pipe(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._target)
        self._writers += [client_w, server_w]

        async def copy(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while chunk := await r.read(65536):
                    w.write(chunk)
                    await w.drain()
            w.close()

        await asyncio.gather(copy(client_r, server_w), copy(server_r, client_w))

    def cut(self) -> None:
        """Reset every connection, both ways (SO_LINGER 0: RST, not FIN)."""
        for writer in self._writers:
            with contextlib.suppress(OSError):
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._writers.clear()


@dataclass
class Message:
    event: str
    data: Any
    id: str | None


@dataclass
class Part:
    """What one connection of a stream delivered."""

    status: int
    stream_id: str | None = None
    messages: list[Message] = field(default_factory=list)
    dropped: bool = False

    @property
    def last_id(self) -> str | None:
        return self.messages[-1].id if self.messages else None


async def _messages(lines: AsyncIterator[str]) -> AsyncIterator[Message]:
    name, data, event_id = "message", [], None
    async for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif not line and data:
            yield Message(name, json.loads("\n".join(data)), event_id)
            name, data, event_id = "message", [], None


async def read_part(
    client: httpx.AsyncClient,
    user: User,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    last_id: str | None = None,
    cut_after_tokens: int | None = None,
    cutter: Cutter | None = None,
) -> Part:
    """One connection's events, until the terminal one or a cut (made by
    ``cutter`` once ``cut_after_tokens`` tokens came)."""
    headers = {**user.headers, **({"Last-Event-ID": last_id} if last_id else {})}
    async with client.stream(method, path, headers=headers, json=body, timeout=60) as response:
        part = Part(response.status_code, response.headers.get("X-Stream-ID"))
        if response.status_code != 200:
            await response.aread()
            part.messages.append(Message("status", response.json(), None))
            return part
        try:
            async for message in _messages(response.aiter_lines()):
                part.messages.append(message)
                tokens = sum(m.event == "token" for m in part.messages)
                if cutter is not None and tokens == cut_after_tokens:
                    cutter.cut()
                if message.event in TERMINAL:
                    return part
        except httpx.TransportError:
            pass
        part.dropped = True
        return part


def check_reassembled(parts: list[Part], whole: list[Message], question: str) -> None:
    """The parts make one clean answer, the same as the uninterrupted one:
    each event once and in order, one sources, one terminal (done) last."""
    messages = [m for part in parts for m in part.messages]
    ids = [int(m.id or "x") for m in messages]
    assert ids == sorted(set(ids)), f"event ids not strictly increasing: {ids}"
    seqs = [m.data["seq"] for m in messages if isinstance(m.data, dict) and "seq" in m.data]
    assert seqs == list(range(1, len(seqs) + 1)), f"seq not each once in order: {seqs}"
    assert [m.event for m in messages].count("sources") == 1
    assert [m.event for m in messages if m.event in TERMINAL] == ["done"]
    assert messages[-1].event == "done"
    text = "".join(m.data["text"] for m in messages if m.event == "token")
    assert text == "".join(m.data["text"] for m in whole if m.event == "token")
    assert text == expected_text(question)
    sources = [m.data for m in messages if m.event == "sources"]
    assert sources == [m.data for m in whole if m.event == "sources"]


def stack_env(llm: FakeOpenAI) -> dict[str, str]:
    """What start_stack gives its services, for a gateway started beside them."""
    return {
        "EMBEDDING_PROVIDER": "hashing",
        "LLM_PROVIDER": "openai",
        "LLM_MODEL": "fake-model",
        "OPENAI_BASE_URL": llm.base_url,
        "LLM_ANSWER_UNGROUNDED": "true",
    }


async def uninterrupted(http: httpx.AsyncClient, base_url: str, user: User, q: str) -> Part:
    http.base_url = httpx.URL(base_url)
    part = await read_part(http, user, "POST", "/api/chat/stream", body={"message": q})
    assert part.status == 200 and not part.dropped
    return part


async def test_a_cut_connection_resumed_gives_the_whole_answer_once(
    fault_stack: FaultStack, llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    stack = start_stack(
        fault_stack, llm, "resume", gateway_env={"STREAM_RESUME_GRACE_SECONDS": "10"}
    )
    http.base_url = httpx.URL(stack.base_url)
    user = await user_with_document(http)
    llm.token_delay = 0.05  # 60 words: 3 s
    question = "tell me about topic-cut"
    whole = await uninterrupted(http, stack.base_url, user, question)
    async with Cutter(stack.base_url) as cutter, httpx.AsyncClient(base_url=cutter.url) as via:
        body = {"message": question, "stream_timeout": 20}
        first = await read_part(
            via, user, "POST", "/api/chat/stream", body=body, cut_after_tokens=3, cutter=cutter
        )
    assert first.dropped and first.stream_id, first
    await asyncio.sleep(1.0)  # events go on meanwhile: the resume must send them
    path = f"/api/chat/stream/{first.stream_id}"
    began = time.monotonic()
    rest = await read_part(http, user, "GET", path, last_id=first.last_id)
    took = time.monotonic() - began
    assert rest.status == 200 and not rest.dropped

    check_reassembled([first, rest], whole.messages, question)
    missed = sum(m.event == "token" for m in rest.messages)
    assert sum(m.event == "token" for m in first.messages) == 3 and missed > 3

    # Only the user whose stream it is finds it; a made-up position is refused.
    stranger = await new_user(http)
    other = await read_part(http, stranger, "GET", path, last_id=first.last_id)
    unknown = await read_part(http, user, "GET", f"/api/chat/stream/{'0' * 32}")
    foreign = await read_part(http, user, "GET", path, last_id="0")
    garbage = await read_part(http, user, "GET", path, last_id="tomorrow")
    assert other.status == 404 and unknown.status == 404, (other, unknown)
    assert foreign.status == 400 and garbage.status == 400, (foreign, garbage)
    # From the start (no Last-Event-ID): the whole answer again, once.
    again = await read_part(http, user, "GET", path)
    check_reassembled([again], whole.messages, question)
    print(
        f"injected: TCP reset after 3 tokens; resumed 1 s later with Last-Event-ID"
        f" {first.last_id}: {len(rest.messages)} events ({missed} tokens), whole in {took:.1f} s;"
        f" reassembled answer == uninterrupted ({len(whole.messages)} events); another user's"
        " token 404, unknown stream 404, foreign id 400; lost: 0, duplicated: 0"
    )


def reply_partition(gateway: Component) -> int:
    for line in gateway.log().splitlines():
        if '"Gateway started"' in line:
            return int(json.loads(line)["reply_partition"])
    raise AssertionError("no start line")


async def test_a_stream_cut_on_one_gateway_resumes_on_the_other(
    fault_stack: FaultStack, llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    grace = {"STREAM_RESUME_GRACE_SECONDS": "10"}
    stack = start_stack(fault_stack, llm, "resume2", gateway_env=grace)
    other = fault_stack.gateway("resume2-gateway-b", **stack_env(llm), **grace)
    assert reply_partition(stack.gateway) != reply_partition(other)
    http.base_url = httpx.URL(stack.base_url)
    user = await user_with_document(http)
    llm.token_delay = 0.05
    question = "and what about topic-moved"
    whole = await uninterrupted(http, stack.base_url, user, question)
    async with Cutter(stack.base_url) as cutter, httpx.AsyncClient(base_url=cutter.url) as via:
        body = {"message": question, "stream_timeout": 20}
        first = await read_part(
            via, user, "POST", "/api/chat/stream", body=body, cut_after_tokens=5, cutter=cutter
        )
    assert first.dropped and first.stream_id
    http.base_url = httpx.URL(other.base_url or "")
    path = f"/api/chat/stream/{first.stream_id}"
    rest = await read_part(http, user, "GET", path, last_id=first.last_id)
    assert rest.status == 200 and not rest.dropped

    check_reassembled([first, rest], whole.messages, question)
    print(
        f"injected: TCP reset after 5 tokens on gateway A (reply partition"
        f" {reply_partition(stack.gateway)}); resumed on gateway B (partition"
        f" {reply_partition(other)}): {len(rest.messages)} more events, answer =="
        " uninterrupted; lost: 0, duplicated: 0"
    )


async def test_after_the_grace_the_answer_is_cancelled_and_a_resume_told_so(
    fault_stack: FaultStack, llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    grace = 2.0
    stack = start_stack(
        fault_stack, llm, "grace", gateway_env={"STREAM_RESUME_GRACE_SECONDS": str(grace)}
    )
    http.base_url = httpx.URL(stack.base_url)
    user = await user_with_document(http)
    llm.token_delay = 0.2  # 60 words: 12 s, far past the grace
    abandoned = llm.abandoned
    async with Cutter(stack.base_url) as cutter, httpx.AsyncClient(base_url=cutter.url) as via:
        body = {"message": "long topic-gone", "stream_timeout": 20}
        first = await read_part(
            via, user, "POST", "/api/chat/stream", body=body, cut_after_tokens=2, cutter=cutter
        )
    cut_at = time.monotonic()
    assert first.dropped and first.stream_id

    def stopped() -> float:
        text = worker_metrics(stack, "grace-query-1")
        return metric(text, "rag_chat_generations_stopped_total", reason="client_disconnected")

    await asyncio.sleep(grace / 2)
    assert stopped() == 0, "the answer was cancelled before its grace ran out"
    for _ in range(60):  # 12 s at most
        if stopped() >= 1:
            break
        await asyncio.sleep(0.2)
    took = time.monotonic() - cut_at
    assert stopped() == 1, "the answer went on after the grace"
    assert grace <= took <= grace + 3
    path = f"/api/chat/stream/{first.stream_id}"
    began = time.monotonic()
    late = await read_part(http, user, "GET", path, last_id=first.last_id)
    answered_in = time.monotonic() - began
    await asyncio.sleep(0.5)

    assert late.status == 200
    assert [(m.event, m.data.get("reason")) for m in late.messages] == [("error", "abandoned")]
    assert late.messages[0].id == first.last_id and answered_in < 2
    assert llm.abandoned == abandoned + 1  # the model's stream was closed too
    print(
        f"injected: TCP reset after 2 tokens, nobody resumed; generation stopped {took:.1f} s"
        f" later (grace {grace:g} s); a resume then got error(abandoned) in"
        f" {answered_in * 1000:.0f} ms; lost: 0"
    )


async def test_rag_chat_resumes_a_cut_connection_on_its_own(
    fault_stack: FaultStack, llm: FakeOpenAI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    stack = start_stack(
        fault_stack, llm, "resumecli", gateway_env={"STREAM_RESUME_GRACE_SECONDS": "10"}
    )
    http.base_url = httpx.URL(stack.base_url)
    user = await user_with_document(http)
    llm.token_delay = 0.1  # 60 words: 6 s
    question = "what about topic-cli"
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("RAG_URL", None)
    async with Cutter(stack.base_url) as cutter:
        login = await asyncio.create_subprocess_exec(
            RAG, "login", "--url", cutter.url, "-u", user.username, "--password-stdin",
            env=env, stdin=PIPE, stdout=PIPE, stderr=PIPE,
        )  # fmt: skip
        await login.communicate(f"{PASSWORD}\n".encode())
        assert login.returncode == 0
        chat = await asyncio.create_subprocess_exec(
            RAG, "chat", question, env=env, stdout=PIPE, stderr=PIPE
        )
        assert chat.stdout is not None
        shown = b""
        while len(shown) < 40:  # a few words of the answer, then the cut
            shown += await asyncio.wait_for(chat.stdout.read(64), 30)
        cutter.cut()
        rest, errors = await asyncio.wait_for(chat.communicate(), 60)
    printed = (shown + rest).decode()

    assert chat.returncode == 0, errors.decode()
    answer = expected_text(question)
    assert answer in printed, printed
    words = printed.split()
    assert all(words.count(word) == 1 for word in answer.split()), printed
    print(
        f"injected: TCP reset under `rag chat` after {len(shown)} bytes of answer; it resumed"
        " on its own and printed the whole answer, each word once"
    )
