"""Kafka as production runs it: three brokers, the topics replicated three
times with two replicas in sync required, producers ``acks=all`` and
idempotent. The leader of the busiest partitions is SIGKILLed while
documents are uploaded and chats stream: every accepted upload is indexed
once, every chat ends with exactly one terminal event and its whole answer
once. The node is then started again and must rejoin: every partition fully
in sync.

The test prints the failover figures: how long until every partition had a
live leader again, until a write to a partition the dead node led was
acknowledged and read back, and until the restarted node was in sync."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragstream.localstack.kafka import KafkaService
from ragstream.localstack.stack import LocalStack, StackConfig
from shared.storage.migrate import upgrade
from tests.faults.conftest import FaultStack, app_env
from tests.support.api import SseEvent, User, new_user, stream_chat, upload, wait_for_status
from tests.support.kafka_cluster import (
    OFFSETS_TOPIC,
    PartitionState,
    Probe,
    describe,
    end_offsets,
    wait_until,
)
from tests.support.openai_server import FakeOpenAI, RunningServer
from tests.support.stores import vectors_per_document

TERMINAL = ("done", "error", "timeout")
CHAT_LANES = 3
# Load goes on this long after the kill: through the failover and past it.
LOAD_AFTER_KILL = 20.0


def _answer(messages: list[dict[str, Any]]) -> str:
    """The fake model's answer: 30 words naming the chat that asked."""
    found = re.search(r"chat-\d+-\d+", messages[-1]["content"])
    marker = found.group(0) if found else "chat-none"
    return expected_text(marker)


def expected_text(marker: str) -> str:
    return " ".join(f"{marker}.{i}" for i in range(30))


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeOpenAI]:
    # A token every 30 ms: an answer streams for about a second, so the kill
    # lands in the middle of some.
    with RunningServer(FakeOpenAI(reply=_answer, token_delay=0.03)) as fake:
        yield fake


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[FaultStack]:
    """Three Kafka nodes, and PostgreSQL, Redis and Chroma, all this
    module's own: a node is killed here."""
    config = StackConfig.ephemeral(tmp_path_factory.mktemp("kafka-cluster"), kafka_brokers=3)
    stack = LocalStack(config)
    stack.start()
    faults = None
    try:
        upgrade(stack.env["DATABASE_URL"])
        env = {
            **app_env(stack, tmp_path_factory.mktemp("cluster-blobs")),
            # One user uploads, polls and chats throughout.
            "REQUESTS_PER_MINUTE": "100000",
        }
        faults = FaultStack(stack, env, log_dir)
        yield faults
    finally:
        if faults is not None:
            faults.stop_all()
        stack.stop()


@dataclass
class Upload:
    sent: float
    answered: float
    status: int
    doc_id: str | None
    retry_after: str | None


@dataclass
class Chat:
    marker: str
    sent: float
    ended: float
    status: int
    events: list[SseEvent]

    def problems(self) -> list[str]:
        """What is wrong with this stream: not one terminal event at its
        end, or an answer not whole or not once (after the last ``reset``,
        which tells the client to discard what it was shown)."""
        if self.status != 200:
            return [f"status {self.status}"]
        found = []
        terminals = [e.event for e in self.events if e.event in TERMINAL]
        if terminals != ["done"] or self.events[-1].event != "done":
            found.append(f"terminal events {terminals}")
        resets = [i for i, e in enumerate(self.events) if e.event == "reset"]
        answer = self.events[resets[-1] + 1 :] if resets else self.events
        seqs = [e.data["seq"] for e in answer if isinstance(e.data, dict) and "seq" in e.data]
        if seqs != sorted(set(seqs)):
            found.append(f"seq not strictly increasing: {seqs}")
        text = "".join(e.data["text"] for e in answer if e.event == "token")
        if text != expected_text(self.marker):
            found.append(f"answer {text!r}")
        return found


def _document(n: int) -> bytes:
    return f"# Memo {n}\n\nThe code word for memo {n} is heron-{n}.\n".encode()


async def _upload_until(stop: asyncio.Event, client: httpx.AsyncClient, user: User) -> list[Upload]:
    uploads = []
    n = 0
    while not stop.is_set():
        n += 1
        sent = time.monotonic()
        response = await client.post(
            "/api/documents",
            headers=user.headers,
            files={"file": (f"memo-{n}.md", _document(n), "text/markdown")},
        )
        accepted = response.status_code == 202
        uploads.append(
            Upload(
                sent,
                time.monotonic(),
                response.status_code,
                response.json()["id"] if accepted else None,
                response.headers.get("Retry-After"),
            )
        )
        await asyncio.sleep(0.2)
    return uploads


async def _chat_until(
    stop: asyncio.Event, client: httpx.AsyncClient, user: User, lane: int
) -> list[Chat]:
    chats = []
    n = 0
    while not stop.is_set():
        n += 1
        marker = f"chat-{lane}-{n}"
        sent = time.monotonic()
        body = {"message": f"What does {marker} say?", "stream_timeout": 60}
        response, events = await stream_chat(client, user, body)
        chats.append(Chat(marker, sent, time.monotonic(), response.status_code, events))
    return chats


async def _busiest(bootstrap: str, prefix: str, window: float) -> tuple[PartitionState, int]:
    """The app's partition written most during ``window`` seconds of load,
    with how many records it took."""
    before = await end_offsets(bootstrap, await describe(bootstrap, (prefix,)))
    await asyncio.sleep(window)
    # Leaders as they are at the end of the window.
    partitions = await describe(bootstrap, (prefix,))
    after = await end_offsets(bootstrap, partitions)
    busiest = max(partitions, key=lambda p: after[p.name] - before.get(p.name, 0))
    return busiest, after[busiest.name] - before.get(busiest.name, 0)


def _node(stack: LocalStack, node_id: int) -> KafkaService:
    [node] = [n for n in stack.kafka_nodes if isinstance(n, KafkaService) and n.node_id == node_id]
    return node


@pytest.mark.timeout(600)
async def test_the_busiest_leader_killed_loses_and_duplicates_nothing(
    cluster: FaultStack, llm: FakeOpenAI
) -> None:
    env = {
        "EMBEDDING_PROVIDER": "hashing",
        "LLM_PROVIDER": "openai",
        "LLM_MODEL": "fake-model",
        "OPENAI_BASE_URL": llm.base_url,
        # Every question reaches the model, whatever the relevance gate
        # makes of the memos: the chats are here to stream.
        "LLM_ANSWER_UNGROUNDED": "true",
    }
    stack, prefix = cluster.stack, cluster.env["KAFKA_TOPIC_PREFIX"]
    bootstrap = cluster.env["KAFKA_BOOTSTRAP_SERVERS"]
    assert cluster.env["KAFKA_REPLICATION_FACTOR"] == "3"
    assert cluster.env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    cluster.worker("ingest", "ingest-failover", **env)
    cluster.worker("query", "query-failover", **env)
    gateway = cluster.gateway("gateway-failover", **env)
    probe = Probe(bootstrap, f"probe-{prefix}")
    watched = (f"{prefix}.", probe.topic, OFFSETS_TOPIC)

    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=60) as client:
        user = await new_user(client)
        seed = await upload(client, user, "memo-0.md", _document(0))
        assert (await wait_for_status(client, user, seed))["status"] == "indexed"
        # The services created their topics as the cluster runs them.
        topics = await describe(bootstrap, (f"{prefix}.",))
        assert topics and all(len(p.replicas) == 3 and len(p.isr) == 3 for p in topics), topics
        await probe.create_topic(replication=3, min_insync=2)
        await probe.start()

        stop = asyncio.Event()
        uploading = asyncio.create_task(_upload_until(stop, client, user))
        chatting = [
            asyncio.create_task(_chat_until(stop, client, user, lane)) for lane in range(CHAT_LANES)
        ]
        busiest, written = await _busiest(bootstrap, f"{prefix}.", window=4)
        victim = _node(stack, busiest.leader)
        led = [p.name for p in await describe(bootstrap, watched) if p.leader == victim.node_id]
        survivors = [n for n in stack.kafka_nodes if n is not victim]
        alive = {n.node_id for n in survivors if isinstance(n, KafkaService)}
        survivors_bootstrap = ",".join(n.url for n in survivors)

        killed_at = time.monotonic()
        victim.kill()
        leaders_back = await wait_until(
            survivors_bootstrap, watched, lambda p: p.leader in alive, timeout=90
        )
        await asyncio.sleep(max(0.0, killed_at + LOAD_AFTER_KILL - time.monotonic()))
        stop.set()
        uploads = await uploading
        chats = [chat for lane in await asyncio.gather(*chatting) for chat in lane]
        await probe.stop()

        # Started again from this thread (the parent-death signal is tied
        # to the thread that forks); ready means it answers metadata.
        restarted_at = time.monotonic()
        victim.check_ports()
        victim.prepare()
        victim.launch()
        await asyncio.to_thread(victim.wait_ready)
        ready_after = time.monotonic() - restarted_at
        in_sync_after = await wait_until(
            bootstrap, watched, lambda p: set(p.isr) == set(p.replicas), timeout=120
        )
        in_sync_after += ready_after

        accepted = [u.doc_id for u in uploads if u.doc_id is not None]
        refused = [u for u in uploads if u.status != 202]
        docs = [await wait_for_status(client, user, doc_id, timeout=120) for doc_id in accepted]
        listed = await client.get("/api/documents", params={"limit": 500}, headers=user.headers)
    vectors = await vectors_per_document(cluster.env["CHROMA_URL"], accepted)
    indexed = [d for d in docs if d["status"] == "indexed" and vectors[d["id"]] == d["chunks"] > 0]
    victim_partitions = {int(name.rsplit("-", 1)[1]) for name in led if name.startswith("probe-")}
    first_ack = probe.first_ack_after(killed_at, victim_partitions)
    first_read = probe.first_read_after(killed_at, victim_partitions)
    unread = set(probe.acked_at) - set(probe.read)
    duplicated = {value: n for value, n in probe.read.items() if n > 1}
    spanning = [u for u in uploads if u.sent < killed_at + leaders_back and u.answered > killed_at]
    chats_spanning = [c for c in chats if c.sent < killed_at < c.ended]
    bad_chats = {c.marker: c.problems() for c in chats if c.problems()}
    upload_seconds = [u.answered - u.sent for u in uploads]
    chat_seconds = [c.ended - c.sent for c in chats]

    print(
        f"\ninjected: SIGKILL of kafka node {victim.node_id}, leader of the busiest partition"
        f" {busiest.name} ({written} records in 4 s) and of {len(led)} watched partitions,"
        f" during {len(uploads)} uploads and {len(chats)} chats"
        f" ({len(spanning)} uploads and {len(chats_spanning)} chats in flight across the kill)"
    )
    print(
        f"failover: every partition led by a live node {leaders_back:.1f} s after the kill;"
        f" a write to a partition it led acknowledged after {_seconds(first_ack)}"
        f" and read back after {_seconds(first_read)};"
        f" slowest upload {max(upload_seconds):.1f} s (median {statistics.median(upload_seconds):.2f} s),"
        f" slowest chat {max(chat_seconds):.1f} s (median {statistics.median(chat_seconds):.2f} s)"
    )
    print(
        f"rejoin: node {victim.node_id} answered {ready_after:.1f} s after its restart,"
        f" every partition fully in sync (3 of 3) after {in_sync_after:.1f} s"
    )
    print(
        f"lost: {len(accepted) - len(indexed)} of {len(accepted)} accepted uploads"
        f" ({len(refused)} refused with 503); chats not ending with one clean done:"
        f" {len(bad_chats)} of {len(chats)}; probe: {len(probe.acked_at)} writes acknowledged,"
        f" {len(unread)} never read, {len(duplicated)} read twice, {len(probe.failed)} failed"
    )

    # The kill hit the load: uploads and chats were in flight across it.
    assert spanning, "no upload was in flight across the kill: the test injected nothing"
    assert chats_spanning, "no chat was streaming across the kill"
    assert victim_partitions, f"node {victim.node_id} led no probe partition: {led}"
    # An upload is accepted, or refused as retryable: never a 500.
    for refusal in refused:
        assert (refusal.status, refusal.retry_after) == (503, "5"), refusal
    # Every accepted upload indexed, each chunk's vector once in Chroma.
    assert len(indexed) == len(accepted), (docs, vectors)
    assert listed.status_code == 200
    assert {d["id"] for d in listed.json()} == {seed, *accepted}
    # Every chat: exactly one terminal event, done, and its whole answer once.
    assert bad_chats == {}
    # acks=all with two in sync: no acknowledged write lost; idempotence:
    # none written twice by the producer's retries.
    assert first_ack is not None and first_read is not None
    assert not unread and not duplicated
    assert set(probe.read) <= set(probe.sent_at)


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"
