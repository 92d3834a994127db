"""Chat streams under faults: a query worker killed mid-answer, a request
delivered twice, a client that leaves or stops reading, two requests with
one X-Request-ID, and a gateway told to stop with streams open.

Every stream must end with exactly one terminal event and never show a
garbled answer. Answers come from a local OpenAI-compatible server, slowed
per token so that streams last long enough to be hurt.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.faults.conftest import FaultStack
from tests.support.api import SseEvent, User, new_user, upload, wait_for_status
from tests.support.kafka import produce, read_until
from tests.support.openai_server import FakeOpenAI, RunningServer
from tests.support.processes import Component, free_port

DOC = b"# Office\n\nThe office opens at nine and closes at five. Badges are worn inside.\n"
TERMINAL = ("done", "error", "timeout")


def _answer(question: str) -> str | list[str]:
    """The fake model's answer, by a word in the question."""
    if "flood" in question:
        # ~12 MB at once: more than the socket buffers can hide from the gateway.
        return [f"{'f' * 20_000} " for _ in range(600)]
    marker = next((w for w in question.split() if w.startswith("topic-")), "topic-none")
    words = 12 if "short" in question else 60
    return " ".join(f"{marker}.{i}" for i in range(words))


def script(messages: list[dict[str, Any]]) -> str | list[str]:
    found = re.search(r"Question: (.*)", messages[-1]["content"])
    return _answer(found.group(1) if found else "")


def expected_text(question: str) -> str:
    answer = _answer(question)
    return answer if isinstance(answer, str) else "".join(answer)


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeOpenAI]:
    with RunningServer(FakeOpenAI(reply=script)) as fake:
        yield fake


@dataclass
class Stack:
    gateway: Component
    queries: list[Component]
    ingest: Component
    metrics_ports: dict[str, int] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.gateway.base_url or ""


def start_stack(
    faults: FaultStack,
    llm: FakeOpenAI,
    name: str,
    *,
    queries: int = 1,
    gateway_env: dict[str, str] | None = None,
    env_all: dict[str, str] | None = None,
) -> Stack:
    """Ingest worker, query workers (each exporting metrics) and a gateway,
    started side by side (``env_all`` for each). Names are unique per test:
    logs are appended."""
    env = {
        **(env_all or {}),
        "EMBEDDING_PROVIDER": "hashing",
        "LLM_PROVIDER": "openai",
        "LLM_MODEL": "fake-model",
        "OPENAI_BASE_URL": llm.base_url,
        # These tests are about streams: every question reaches the model,
        # whatever the relevance gate makes of its synthetic passages.
        "LLM_ANSWER_UNGROUNDED": "true",
    }
    ports = {f"{name}-query-{i}": free_port() for i in range(1, queries + 1)}
    with ThreadPoolExecutor(max_workers=queries + 2) as pool:
        ingest = pool.submit(faults.worker, "ingest", f"{name}-ingest", **env)
        started = [
            pool.submit(faults.worker, "query", q, **env, METRICS_PORT=str(port))
            for q, port in ports.items()
        ]
        gateway = pool.submit(faults.gateway, f"{name}-gateway", **env, **(gateway_env or {}))
        return Stack(gateway.result(), [q.result() for q in started], ingest.result(), ports)


async def user_with_document(client: httpx.AsyncClient) -> User:
    user = await new_user(client)
    doc_id = await upload(client, user, "office.md", DOC)
    assert (await wait_for_status(client, user, doc_id))["status"] == "indexed"
    return user


@dataclass
class Stream:
    status: int
    events: list[SseEvent] = field(default_factory=list)
    at: list[float] = field(default_factory=list)
    first_token: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def terminals(self) -> list[SseEvent]:
        return [e for e in self.events if e.event in TERMINAL]

    @property
    def text(self) -> str:
        return "".join(e.data["text"] for e in self.events if e.event == "token")

    def check_clean(self, question: str) -> None:
        """One sources event, seq strictly increasing, one terminal (done)
        at the end, and the answer once."""
        seqs = [e.data["seq"] for e in self.events if isinstance(e.data, dict) and "seq" in e.data]
        assert seqs == sorted(set(seqs)), f"seq not strictly increasing: {seqs}"
        assert [e.event for e in self.events].count("sources") == 1
        assert [e.event for e in self.terminals] == ["done"]
        assert self.events[-1].event == "done"
        assert self.text == expected_text(question)


async def _sse_events(lines: AsyncIterator[str]) -> AsyncIterator[SseEvent]:
    name, data = "message", []
    async for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            yield SseEvent(name, json.loads("\n".join(data)))
            name, data = "message", []


async def chat(
    client: httpx.AsyncClient,
    user: User,
    question: str,
    stream: Stream | None = None,
    *,
    request_id: str | None = None,
    timeout: float = 20,
    leave_after_tokens: int | None = None,
) -> Stream:
    """Stream one chat into ``stream`` (made here if not given)."""
    headers = {**user.headers, **({"X-Request-ID": request_id} if request_id else {})}
    body = {"message": question, "stream_timeout": timeout}
    async with client.stream(
        "POST", "/api/chat/stream", headers=headers, json=body, timeout=60
    ) as response:
        stream = stream or Stream(response.status_code)
        stream.status = response.status_code
        if response.status_code != 200:
            await response.aread()
            return stream
        async for event in _sse_events(response.aiter_lines()):
            stream.events.append(event)
            stream.at.append(time.monotonic())
            if event.event == "token":
                stream.first_token.set()
                tokens = sum(e.event == "token" for e in stream.events)
                if leave_after_tokens is not None and tokens >= leave_after_tokens:
                    return stream  # the client leaves: the connection closes
    return stream


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus exposition (0 if absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if wanted else ''} (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        return (await http.get(url)).text


def worker_metrics(stack: Stack, name: str) -> str:
    return httpx.get(f"http://127.0.0.1:{stack.metrics_ports[name]}/metrics", timeout=10).text


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


LEASE = 2.0  # CHAT_CLAIM_LEASE_SECONDS of these stacks: a lost worker is found fast


async def test_a_query_worker_killed_mid_stream_is_answered_again_after_one_reset(
    fault_stack: FaultStack, llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    stack = start_stack(
        fault_stack, llm, "kill", queries=2, env_all={"CHAT_CLAIM_LEASE_SECONDS": str(LEASE)}
    )
    http.base_url = httpx.URL(stack.base_url)
    user = await user_with_document(http)
    llm.token_delay = 0.1  # 60 words: 6 s
    questions = [f"what about topic-{n}" for n in "abcd"]
    ids = [f"kill-{uuid.uuid4().hex[:8]}" for _ in questions]
    streams = [Stream(0) for _ in questions]
    reading = [
        asyncio.create_task(chat(http, user, q, s, request_id=i, timeout=15))
        for q, s, i in zip(questions, streams, ids, strict=True)
    ]
    await asyncio.wait_for(streams[0].first_token.wait(), 30)
    [answering] = [q for q in stack.queries if ids[0] in q.log()]
    answering.kill()
    killed_at = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*reading), 60)

    lost = [ids.index(i) for i in ids if i in answering.log()]
    restarts: list[float] = []
    for n, (question, stream) in enumerate(zip(questions, streams, strict=True)):
        events = [e.event for e in stream.events]
        if n in lost and "reset" in events:
            # Exactly one reset, then the whole answer of the new attempt.
            assert events.count("reset") == 1, events
            after = stream.events[events.index("reset") + 1 :]
            again = Stream(200, after, stream.at[events.index("reset") + 1 :])
            again.check_clean(question)
            first = next(at for e, at in zip(after, again.at, strict=True) if e.event == "token")
            restarts.append(first - killed_at)
        else:
            # Answered whole by the survivor (or by the lost worker before it died).
            stream.check_clean(question)
    assert restarts, "no stream of the killed worker was answered again"
    assert max(restarts) <= 2 * LEASE + 2, f"new attempts began {restarts} s after the kill"
    print(
        f"injected: SIGKILL {answering.name} mid-stream with 4 streams open; {len(restarts)}"
        f" answered again after one reset, first new token {max(restarts):.1f} s after the"
        f" kill (lease {LEASE:g} s); the other {len(streams) - len(restarts)} clean"
    )


async def test_with_no_worker_left_a_killed_answer_times_out(
    fault_stack: FaultStack, llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    stack = start_stack(
        fault_stack, llm, "alone", queries=1, env_all={"CHAT_CLAIM_LEASE_SECONDS": str(LEASE)}
    )
    http.base_url = httpx.URL(stack.base_url)
    user = await user_with_document(http)
    llm.token_delay = 0.2  # 60 words: 12 s
    stream = Stream(0)
    reading = asyncio.create_task(chat(http, user, "what about topic-z", stream, timeout=6))
    await asyncio.wait_for(stream.first_token.wait(), 30)
    stack.queries[0].kill()
    killed_at = time.monotonic()
    await asyncio.wait_for(reading, 30)
    llm.token_delay = 0
    assert [e.event for e in stream.terminals] == ["timeout"]
    assert "reset" not in [e.event for e in stream.events]
    assert stream.at[-1] - killed_at <= 6 + 1.5


async def test_a_request_delivered_twice_is_never_garbled(
    fault_stack: FaultStack, llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    stack = start_stack(fault_stack, llm, "twice")
    http.base_url = httpx.URL(stack.base_url)
    user = await user_with_document(http)
    llm.token_delay = 0.05  # 60 words: 3 s
    question = "tell me about topic-twice"
    stream = Stream(0)
    reading = asyncio.create_task(chat(http, user, question, stream))
    await asyncio.wait_for(stream.first_token.wait(), 30)

    env = fault_stack.env
    topic = f"{env['KAFKA_TOPIC_PREFIX']}.chat.requests"
    [request] = [
        m
        for m in await read_until(
            env["KAFKA_BOOTSTRAP_SERVERS"],
            topic,
            lambda ms: any(m["message"] == question for m in ms),
        )
        if m["message"] == question
    ]
    raw, key = _encode(request), request["conversation_id"].encode()
    # Redelivered as is: the worker finds the stream claimed and skips it.
    await produce(env["KAFKA_BOOTSTRAP_SERVERS"], topic, raw, key=key)
    # Redelivered with the claim gone (Redis lost it): answered a second
    # time; the gateway keeps to the first attempt.
    redis = Redis.from_url(env["REDIS_URL"])
    await asyncio.sleep(0.5)
    removed = await redis.delete(
        f"rag:chat-claim:{request['tenant_id']}:{request['stream_id']}",
        f"rag:chat-lease:{request['tenant_id']}:{request['stream_id']}",
    )
    await redis.aclose()
    await produce(env["KAFKA_BOOTSTRAP_SERVERS"], topic, raw, key=key)
    await asyncio.wait_for(reading, 30)

    stream.check_clean(question)
    await asyncio.sleep(1)
    gateway = await scrape(f"{stack.base_url}/metrics")
    dropped = metric(gateway, "rag_gateway_reply_drops_total", reason="other_attempt")
    query = worker_metrics(stack, "twice-query-1")
    skipped = metric(query, "rag_chat_requests_total", outcome="duplicate")
    assert removed == 2 and skipped == 1 and dropped >= 1
    print(
        f"injected: the same ChatRequest 3 times; claim skipped {skipped:g}, second answer's"
        f" events dropped by the gateway {dropped:g}; client saw {len(stream.events)} events,"
        " seq strictly increasing, one answer; lost: 0"
    )


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


async def test_a_stopping_query_worker_finishes_its_answer_and_leaves(
    fault_stack: FaultStack, llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    stack = start_stack(fault_stack, llm, "wstop", queries=2)
    http.base_url = httpx.URL(stack.base_url)
    user = await user_with_document(http)
    llm.token_delay = 0.05  # 60 words: 3 s
    request_id = f"wstop-{uuid.uuid4().hex[:8]}"
    question = "what about topic-w"
    stream = Stream(0)
    reading = asyncio.create_task(chat(http, user, question, stream, request_id=request_id))
    await asyncio.wait_for(stream.first_token.wait(), 30)
    [answering] = [q for q in stack.queries if request_id in q.log()]
    answering.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    await asyncio.wait_for(reading, 30)
    exit_code = await asyncio.to_thread(answering.process.wait, 25)
    exited_after = time.monotonic() - signalled

    stream.check_clean(question)
    assert exit_code == 0 and "Worker stopped" in answering.log()
    llm.token_delay = 0
    began = time.monotonic()
    after = await chat(http, user, "and topic-x short", timeout=30)
    after.check_clean("and topic-x short")
    print(
        f"injected: SIGTERM {answering.name} mid-answer; the answer finished (done, clean),"
        f" the worker exited {exited_after:.1f} s after the signal; next chat answered in"
        f" {time.monotonic() - began:.1f} s; lost: 0"
    )


async def test_a_client_that_leaves_stops_the_generation(
    fault_stack: FaultStack, llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    # No grace to resume in: the answer stops as the client leaves
    # (tests/faults/test_resume.py has the grace).
    stack = start_stack(fault_stack, llm, "leave", gateway_env={"STREAM_RESUME_GRACE_SECONDS": "0"})
    http.base_url = httpx.URL(stack.base_url)
    user = await user_with_document(http)
    llm.token_delay = 0.2  # 60 words: 12 s
    abandoned = llm.abandoned
    stream = await chat(http, user, "long topic-leave", leave_after_tokens=1)
    left_at = time.monotonic()
    deadline = left_at + 10
    stopped = 0.0
    while stopped < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        text = worker_metrics(stack, "leave-query-1")
        stopped = metric(text, "rag_chat_generations_stopped_total", reason="client_disconnected")
    assert stopped == 1, "the generation went on after the client left"
    took = time.monotonic() - left_at
    await asyncio.sleep(0.5)
    assert llm.abandoned == abandoned + 1  # the model's stream was closed too
    print(
        f"injected: client closed the stream after {len(stream.events)} events; generation"
        f" stopped {took:.1f} s later (rag_chat_generations_stopped_total=1), model stream"
        " closed; lost: 0"
    )


async def test_two_requests_with_one_request_id_get_their_own_answers(
    fault_stack: FaultStack, llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    stack = start_stack(fault_stack, llm, "sameid")
    http.base_url = httpx.URL(stack.base_url)
    user = await user_with_document(http)
    llm.token_delay = 0.02
    questions = ["about topic-one please", "about topic-two please"]
    streams = await asyncio.gather(
        *(chat(http, user, q, request_id="same-request-id") for q in questions)
    )
    for question, stream in zip(questions, streams, strict=True):
        stream.check_clean(question)
    print("injected: two concurrent chats with one X-Request-ID; each got its own answer; lost: 0")


async def test_a_stopping_gateway_drains_its_streams(
    fault_stack: FaultStack, llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    grace = 3.0
    stack = start_stack(
        fault_stack, llm, "drain", gateway_env={"SHUTDOWN_GRACE_SECONDS": str(grace)}
    )
    http.base_url = httpx.URL(stack.base_url)
    user = await user_with_document(http)
    llm.token_delay = 0.1  # short: 1.2 s, long: 6 s
    short, long = Stream(0), Stream(0)
    readers = [
        asyncio.create_task(chat(http, user, "short topic-s", short)),
        asyncio.create_task(chat(http, user, "long topic-l", long)),
    ]
    await asyncio.wait_for(asyncio.gather(short.first_token.wait(), long.first_token.wait()), 30)
    stack.gateway.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    await asyncio.sleep(0.3)
    refused = await http.post(
        "/api/chat/stream", headers=user.headers, json={"message": "new topic-n"}
    )
    readiness = await http.get("/health/ready")
    await asyncio.wait_for(asyncio.gather(*readers), 30)
    ended_after = long.at[-1] - signalled
    exit_code = await asyncio.to_thread(stack.gateway.process.wait, 20)

    assert refused.status_code == 503 and "restarting" in refused.json()["detail"]
    assert readiness.status_code == 503 and readiness.json()["failed"] == ["draining"]
    short.check_clean("short topic-s")
    assert [e.event for e in long.terminals] == ["error"]
    assert long.events[-1].data["reason"] == "shutdown"
    assert grace - 0.5 <= ended_after <= grace + 2.5
    # uvicorn re-raises the SIGTERM it handled once it is done: 0 or -15.
    assert exit_code in (0, -signal.SIGTERM)
    print(
        f"injected: SIGTERM to the gateway with 2 streams open (grace {grace:g} s); the short"
        f" one ended done, the long one error(shutdown) {ended_after:.1f} s after; a new chat"
        f" got {refused.status_code}; gateway exited {exit_code}; lost: 0"
    )


async def test_a_client_that_stops_reading_is_cut_alone(
    fault_stack: FaultStack, llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    send_timeout = 1.0
    stack = start_stack(
        fault_stack,
        llm,
        "slow",
        # A queue too large to overflow first: the overflow cut would end
        # the stream before its send stalls (the test below covers it).
        gateway_env={"SSE_SEND_TIMEOUT": str(send_timeout), "STREAM_QUEUE_SIZE": "100000"},
    )
    http.base_url = httpx.URL(stack.base_url)
    user = await user_with_document(http)
    llm.token_delay = 0
    stalled = await _stalled_client(stack.base_url, user, "flood topic-f")
    began = time.monotonic()
    while time.monotonic() < began + 20:
        await asyncio.sleep(0.1)
        text = await scrape(f"{stack.base_url}/metrics")
        if metric(text, "rag_gateway_slow_clients_total"):
            break
    took = time.monotonic() - began
    llm.token_delay = 0.02
    other = await chat(http, user, "meanwhile topic-m")
    await asyncio.sleep(0.5)
    text = await scrape(f"{stack.base_url}/metrics")
    stalled.close()

    other.check_clean("meanwhile topic-m")
    slow = metric(text, "rag_gateway_slow_clients_total")
    overflow = metric(text, "rag_gateway_reply_drops_total", reason="overflow")
    assert slow == 1, "the stalled client was never cut"
    assert took <= send_timeout + 3
    assert metric(text, "rag_gateway_streams_active") == 0
    assert overflow == 0
    print(
        f"injected: a client that stopped reading a ~12 MB answer; the connection was cut after"
        f" {took:.1f} s (send timeout {send_timeout:g} s, slow_clients={slow:g}); another"
        " stream meanwhile answered in full; lost: 0"
    )


async def test_a_client_that_falls_behind_is_cut_when_its_queue_overflows(
    fault_stack: FaultStack, llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    queue_size = 8
    stack = start_stack(
        fault_stack,
        llm,
        "overflow",
        # A send timeout far longer than the test: only the overflow can cut.
        gateway_env={"SSE_SEND_TIMEOUT": "120", "STREAM_QUEUE_SIZE": str(queue_size)},
    )
    http.base_url = httpx.URL(stack.base_url)
    user = await user_with_document(http)
    llm.token_delay = 0
    behind = await _stalled_client(stack.base_url, user, "flood topic-o")
    began = time.monotonic()
    while time.monotonic() < began + 20:
        await asyncio.sleep(0.1)
        text = await scrape(f"{stack.base_url}/metrics")
        if metric(text, "rag_gateway_reply_drops_total", reason="overflow"):
            break
    took = time.monotonic() - began
    llm.token_delay = 0.02
    other = await chat(http, user, "meanwhile topic-n")
    # The client reads again: what the sockets held, then the cut, at once.
    tail = await asyncio.to_thread(_read_until, behind, b"event: error", 15)
    behind.close()
    await asyncio.sleep(0.5)
    text = await scrape(f"{stack.base_url}/metrics")

    other.check_clean("meanwhile topic-n")
    overflow = metric(text, "rag_gateway_reply_drops_total", reason="overflow")
    assert overflow >= 1, "the queue of the client that fell behind never overflowed"
    assert took <= 10
    error = tail[tail.index(b"event: error") :]
    assert b"overflow" in error and b"event: done" not in tail, error[:300]
    # Its answer is cancelled, unless the worker had finished it before the
    # cut (the flood is written at full speed): then there is nothing to stop.
    cancelled = metric(text, "rag_gateway_stream_cancels_total", reason="overflow")
    answered = metric(text, "rag_gateway_stream_leaves_total", outcome="answered")
    assert (cancelled, answered) in ((1, 0), (0, 1)), (cancelled, answered)
    # The overflow cut it, not the send timeout.
    assert metric(text, "rag_gateway_slow_clients_total") == 0
    assert metric(text, "rag_gateway_streams_active") == 0
    print(
        f"injected: a client that stopped reading a ~12 MB answer, STREAM_QUEUE_SIZE"
        f" {queue_size}; its queue overflowed after {took:.1f} s ({overflow:g} replies"
        " dropped) and, once it read again, its stream ended with error(overflow); another"
        " stream meanwhile answered in full; lost: 0"
    )


def _read_until(sock: socket.socket, marker: bytes, timeout: float) -> bytes:
    """Read the socket until ``marker`` and the end of its event, or fail."""
    sock.settimeout(timeout)
    received = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = received.find(marker)
        if found >= 0 and re.search(rb"\r?\n\r?\n", received[found:]):
            return bytes(received)
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        # Keep the tail only: the marker comes last, after megabytes of tokens.
        received = received[-65536:] + chunk
    raise AssertionError(f"no {marker!r} within {timeout:g} s: {bytes(received[-300:])!r}")


async def _stalled_client(base_url: str, user: User, question: str) -> socket.socket:
    """A raw connection with a tiny receive buffer that reads the response
    headers, then nothing more."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    body = json.dumps({"message": question, "stream_timeout": 30}).encode()
    head = (
        f"POST /api/chat/stream HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: {user.headers['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    first = await asyncio.to_thread(sock.recv, 256)
    assert first.startswith(b"HTTP/1.1 200"), first
    return sock
