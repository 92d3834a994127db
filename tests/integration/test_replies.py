"""The reply router on a real partition: only its own streams' events."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY

from gateway.streams.inbox import Inbox
from gateway.streams.replies import ReplyRouter
from shared.config import Settings
from shared.contracts.events import DoneReply, SearchReply, TokenReply
from shared.runtime.kafka import create_broker, publish, publish_nowait


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, partitions, 1)])
    await admin.close()


def _unclaimed() -> float:
    return REGISTRY.get_sample_value("rag_gateway_unclaimed_replies_total") or 0.0


async def test_router_delivers_by_stream_and_owner_and_drops_the_rest(
    stack_env: dict[str, str],
) -> None:
    bootstrap = stack_env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"replies-{uuid.uuid4().hex[:8]}"
    await _create_topic(bootstrap, topic, partitions=2)

    router = ReplyRouter(bootstrap, topic, partition=1)
    await router.start()
    broker = create_broker(Settings(kafka_bootstrap_servers=bootstrap), "test")
    await broker.start()
    owner = {"tenant_id": uuid.uuid4(), "user_id": uuid.uuid4()}
    ids = {**owner, "correlation_id": "same-request-id", "conversation_id": uuid.uuid4()}
    stranger = {**ids, "tenant_id": uuid.uuid4(), "user_id": uuid.uuid4()}
    try:
        mine = router.open("stream-mine", owner["tenant_id"], owner["user_id"])
        before = _unclaimed()
        await publish(
            broker,
            topic,
            TokenReply(stream_id="stream-other", seq=0, text="x", **ids),
            partition=1,
        )
        # The right stream id for another tenant and user: not delivered.
        await publish(
            broker,
            topic,
            TokenReply(stream_id="stream-mine", seq=0, text="evil", **stranger),
            partition=1,
        )
        await publish(
            broker,
            topic,
            TokenReply(stream_id="stream-mine", seq=0, text="hi", **ids),
            partition=1,
        )
        await publish(broker, topic, DoneReply(stream_id="stream-mine", seq=1, **ids), partition=1)
        # Partition 0 is another replica's: never read here.
        await publish(broker, topic, DoneReply(stream_id="stream-mine", seq=9, **ids), partition=0)

        got = [await asyncio.wait_for(mine.get(), 10) for _ in range(2)]
        assert [(r.type, r.seq) for r in got] == [("token", 0), ("done", 1)]
        assert got[0].text == "hi"
        await asyncio.sleep(0.5)
        assert mine.empty()
        assert _unclaimed() == before + 2
    finally:
        router.close("stream-mine")
        await broker.stop()
        await router.stop()


async def test_a_moved_router_reads_its_new_partition_and_keeps_the_old(
    stack_env: dict[str, str],
) -> None:
    bootstrap = stack_env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"replies-{uuid.uuid4().hex[:8]}"
    await _create_topic(bootstrap, topic, partitions=3)

    router = ReplyRouter(bootstrap, topic, partition=0)
    await router.start()
    broker = create_broker(Settings(kafka_bootstrap_servers=bootstrap), "test")
    await broker.start()
    tenant, user = uuid.uuid4(), uuid.uuid4()
    ids = {"tenant_id": tenant, "user_id": user, "correlation_id": "c", "conversation_id": tenant}
    try:
        before_move = router.open("opened-before", tenant, user)
        await router.move(2)
        assert router.partition == 2
        after_move = router.open("opened-after", tenant, user)

        # The stream opened before the move still gets replies on partition 0.
        await publish(
            broker, topic, DoneReply(stream_id="opened-before", seq=0, **ids), partition=0
        )
        await publish(broker, topic, DoneReply(stream_id="opened-after", seq=0, **ids), partition=2)

        assert (await asyncio.wait_for(before_move.get(), 10)).stream_id == "opened-before"
        assert (await asyncio.wait_for(after_move.get(), 10)).stream_id == "opened-after"
    finally:
        router.close("opened-before")
        router.close("opened-after")
        await broker.stop()
        await router.stop()


async def test_a_burst_bigger_than_the_queue_reaches_a_client_that_keeps_reading(
    stack_env: dict[str, str],
) -> None:
    """A thousand events arrive in a few fetches; the stream's queue holds 32.
    A reader that keeps reading gets them all: the router lets it catch up
    rather than cutting the stream for overflow."""
    bootstrap = stack_env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"replies-{uuid.uuid4().hex[:8]}"
    await _create_topic(bootstrap, topic, partitions=1)
    router = ReplyRouter(bootstrap, topic, partition=0)
    await router.start()
    broker = create_broker(Settings(kafka_bootstrap_servers=bootstrap), "test")
    await broker.start()
    owner = {"tenant_id": uuid.uuid4(), "user_id": uuid.uuid4()}
    ids = {**owner, "correlation_id": "burst", "conversation_id": uuid.uuid4()}
    count = 1000
    try:
        stream = router.open("stream-burst", owner["tenant_id"], owner["user_id"], size=32)
        reader = asyncio.create_task(_read(stream, count))
        sent = [
            await publish_nowait(
                broker,
                topic,
                TokenReply(stream_id="stream-burst", seq=n, text=".", **ids),
                partition=0,
            )
            for n in range(count)
        ]
        await asyncio.gather(*sent)
        got = await asyncio.wait_for(reader, 20)
        assert got == list(range(count))
        assert stream.cut_reason is None
    finally:
        router.close("stream-burst")
        await broker.stop()
        await router.stop()


async def _read(stream: Inbox, count: int) -> list[int]:
    """A client that keeps reading, as fast as the loop lets it."""
    return [(await stream.get()).seq for _ in range(count)]


async def test_a_search_gets_its_one_reply_and_never_another_owners(
    stack_env: dict[str, str],
) -> None:
    """POST /api/search's reply is routed by the same rule as a stream's:
    the search's id, for its tenant and user, the first reply heard."""
    bootstrap = stack_env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"replies-{uuid.uuid4().hex[:8]}"
    await _create_topic(bootstrap, topic, partitions=1)
    router = ReplyRouter(bootstrap, topic, partition=0)
    await router.start()
    broker = create_broker(Settings(kafka_bootstrap_servers=bootstrap), "test")
    await broker.start()
    owner = {"tenant_id": uuid.uuid4(), "user_id": uuid.uuid4(), "correlation_id": "c"}
    stranger = {**owner, "tenant_id": uuid.uuid4(), "user_id": uuid.uuid4()}
    try:
        waiter = router.expect("search-mine", owner["tenant_id"], owner["user_id"])
        before = _unclaimed()
        forged = SearchReply(stream_id="search-mine", error="evil", **stranger)
        first = SearchReply(stream_id="search-mine", error="first", **owner)
        second = SearchReply(stream_id="search-mine", error="second", **owner)
        for reply in (forged, first, second):
            await publish(broker, topic, reply, partition=0)
        got = await asyncio.wait_for(waiter.reply, 10)
        assert got.error == "first"
        await asyncio.sleep(0.5)
        assert _unclaimed() == before + 2  # the forged one and the second
    finally:
        router.forget("search-mine")
        await broker.stop()
        await router.stop()
