"""Token events are pipelined (no broker round trip each), and the terminal
event waits for every one before it; a drain refuses new streams, waits for
open ones, and cuts those still open when the grace runs out."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from gateway.streams.drain import drain
from query.streaming import ReplyStream
from shared.contracts.events import ChatRequest, ReplyTo


class UnackedBroker:
    """Records what is published; acknowledgements come only when told."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.acks: list[asyncio.Future[None]] = []

    async def publish(self, body: bytes, topic: str, **kwargs: Any) -> Any:
        self.sent.append(json.loads(body))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        if kwargs.get("no_confirm"):
            return ack
        ack.set_result(None)
        return None

    def ack_all(self) -> None:
        for ack in self.acks:
            if not ack.done():
                ack.set_result(None)


def _request() -> ChatRequest:
    return ChatRequest(
        correlation_id="c",
        tenant_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        message="hi",
        deadline=datetime.now(UTC) + timedelta(seconds=30),
        reply_to=ReplyTo(topic="replies", partition=3),
    )


async def test_tokens_do_not_wait_for_acks_but_done_waits_for_all_of_them() -> None:
    broker = UnackedBroker()
    stream = ReplyStream(broker, "replies", _request(), coalesce_words=1)  # type: ignore[arg-type]
    await stream.sources([])
    for word in ("Lima ", "is ", "the ", "capital"):
        await asyncio.wait_for(stream.token(word), 1)  # would hang if it awaited the ack
    done = asyncio.create_task(stream.done([]))
    await asyncio.sleep(0.05)
    assert [e["type"] for e in broker.sent] == ["sources"] + ["token"] * 4
    assert not done.done()
    broker.ack_all()
    await asyncio.wait_for(done, 1)
    assert [e["seq"] for e in broker.sent] == list(range(6))
    assert broker.sent[-1]["type"] == "done"
    assert {e["attempt_id"] for e in broker.sent} == {stream.attempt_id}


class Replies:
    def __init__(self, open_streams: int) -> None:
        self.open_streams = open_streams
        self.cut: list[str] = []

    def cut_all(self, reason: str) -> None:
        self.cut.append(reason)
        self.open_streams = 0


async def test_a_drain_waits_for_open_streams_then_cuts_the_rest() -> None:
    finishing = SimpleNamespace(draining=False, replies=Replies(1))
    task = asyncio.create_task(drain(finishing, grace=5))  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    assert finishing.draining and not task.done()
    finishing.replies.open_streams = 0
    await asyncio.wait_for(task, 1)
    assert finishing.replies.cut == []

    stuck = SimpleNamespace(draining=False, replies=Replies(2))
    await asyncio.wait_for(drain(stuck, grace=0.3), 2)  # type: ignore[arg-type]
    assert stuck.replies.cut == ["shutdown"]


async def test_the_first_words_go_at_once_and_later_ones_are_coalesced() -> None:
    broker = UnackedBroker()
    stream = ReplyStream(broker, "replies", _request(), coalesce_words=3)  # type: ignore[arg-type]
    await stream.token("Lima ")
    # The user waits for the first words: they are not held for company.
    assert [e.get("text") for e in broker.sent] == ["Lima "]
    for word in ("is ", "the ", "capital ", "of ", "Peru"):
        await stream.token(word)
    assert [e.get("text") for e in broker.sent] == ["Lima ", "is the capital "]
    await stream.token(".")
    assert [e.get("text") for e in broker.sent][-1] == "of Peru."
    await stream.token(" Yes")
    await asyncio.sleep(0.06)
    # A word arriving after the buffer aged 50 ms sends what waited.
    await stream.token("!")
    assert [e.get("text") for e in broker.sent][-1] == " Yes!"
    await stream.token(" Done")
    done = asyncio.create_task(stream.done([]))
    await asyncio.sleep(0.01)
    broker.ack_all()  # including the last words', which done() sent first
    await asyncio.wait_for(done, 1)
    texts = [e.get("text") for e in broker.sent if e["type"] == "token"]
    assert texts == ["Lima ", "is the capital ", "of Peru.", " Yes!", " Done"]
