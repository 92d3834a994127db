"""Releasing waiting documents to the ingest workers, fairly across tenants.

Uploads wait in PostgreSQL (``shared.intake.queue.wait``); every ingest
worker runs a releaser that publishes their requests, at most
``INGEST_WINDOW_PER_WORKER`` released and unsettled per tenant and ingest
worker (the group's members, counted from Kafka), taking turns
across tenants and a tenant's interactive uploads before its bulk work
(``shared.storage.ingest_queue``). So Kafka never holds more of one tenant's
backlog than the workers will take soon, and another tenant's upload waits
behind a window, not behind an archive (docs/architecture.md, "Fair
ingestion").

Releasers wake when a document starts waiting or a released one settles
(PostgreSQL ``NOTIFY``, sent by triggers), and every
``INGEST_RELEASE_POLL_SECONDS`` in case a notification was missed. A pass
publishes and records the requests in the transaction that holds the rows:
a releaser that dies mid-pass leaves them waiting, to be released again
(a request it had already published is then indexed twice, never lost).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from ingest.metrics import INGEST_RELEASED
from shared.contracts.events import IngestRequest
from shared.contracts.topics import Topics
from shared.intake import ingest_request, queued_status
from shared.runtime.clients import Clients
from shared.runtime.kafka import publish
from shared.storage import documents, ingest_queue
from shared.storage.documents import Conn, Document

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = asyncpg.Connection | PoolConnectionProxy[Any]

log = structlog.get_logger(__name__)

# How often the releasers count the ingest workers (the window scales with them).
REFRESH_SECONDS = 15.0


async def release_once(clients: Clients, workers: int = 1) -> int:
    """One pass: release what the window allows now (``workers``: in the
    ingest group); how many were."""
    settings, topics = clients.settings, clients.topics
    window = settings.ingest_window_per_worker * max(workers, 1)
    async with clients.pool.acquire() as conn, conn.transaction():
        picked = await ingest_queue.pick(conn, topics.ingest_requests, window)
        made = [await _request(conn, doc, cid) for doc, cid in picked]
        requests = [r for r in made if r is not None]
        if requests:
            loads = await ingest_queue.partition_loads(conn, topics.ingest_requests)
            places = spread(len(requests), loads, settings.kafka_request_partitions)
            await send(clients.broker, topics, conn, requests, places)
    for doc, _ in picked:
        INGEST_RELEASED.labels(doc.lane).inc()
    return len(picked)


def spread(count: int, loads: Mapping[int, int], partitions: int) -> list[int]:
    """A partition for each of ``count`` requests: each to the one with the
    fewest released documents unsettled (``loads``), lowest number first.
    Every worker then gets work, and a new upload lands where the fewest
    documents are ahead of it."""
    load = [loads.get(p, 0) for p in range(partitions)]
    chosen = []
    for _ in range(count):
        least = min(range(partitions), key=load.__getitem__)
        load[least] += 1
        chosen.append(least)
    return chosen


async def _request(conn: Conn, doc: Document, correlation_id: str) -> IngestRequest | None:
    try:
        return ingest_request(doc, correlation_id)
    except ValidationError:
        # Only a row whose blob was never finished has no checksum; no
        # worker could index it, and left waiting it would be picked again
        # at every pass.
        await documents.set_status(conn, doc.id, "failed", error="the upload never finished")
        log.warning("Waiting document cannot be released", document_id=str(doc.id))
        return None


async def send(
    broker: KafkaBroker,
    topics: Topics,
    conn: Conn,
    requests: Sequence[IngestRequest],
    partitions: Sequence[int | None] | None = None,
) -> None:
    """Publish the requests together (to ``partitions``, one each; by
    default the document's key decides), then record where each sits, in
    ``conn``'s transaction."""
    places = partitions or [None] * len(requests)
    sent = await asyncio.gather(
        *(
            publish(broker, topics.ingest_requests, r, key=r.document_id, partition=p)
            for r, p in zip(requests, places, strict=True)
        )
    )
    for request, record in zip(requests, sent, strict=True):
        await documents.record_request(
            conn, request.document_id, record.topic, record.partition, record.offset
        )


async def resend(
    broker: KafkaBroker, topics: Topics, conn: Conn, doc: Document, correlation_id: str
) -> None:
    """Publish a released document's request again (the sweeper: the first
    was lost), after a ``queued`` status unless its readers saw it
    ``processing``: they do not see it go back. Refused (``ValidationError``)
    for a row whose blob was never finished."""
    request = ingest_request(doc, correlation_id)
    if doc.status == "queued":
        event = queued_status(doc, correlation_id)
        await publish(broker, topics.ingest_events, event, key=doc.id)
    await send(broker, topics, conn, [request])


async def release_forever(clients: Clients) -> None:
    """From the worker's start: a pass whenever woken, or every
    ``ingest_release_poll_seconds``."""
    await broker_started(clients)
    wake = asyncio.Event()
    workers = GroupSize(clients)
    listening = asyncio.create_task(_listen(clients, wake))
    try:
        while True:
            wake.clear()
            try:
                await release_once(clients, await workers.now())
            except Exception as exc:
                # A dependency down now may be back at the next pass.
                log.warning("Release of waiting documents failed", error=_describe(exc))
            with suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), clients.settings.ingest_release_poll_seconds)
    finally:
        listening.cancel()
        with suppress(asyncio.CancelledError):
            await listening


@dataclass
class GroupSize:
    """How many ingest workers share the work: the group's members, read
    from Kafka at most every ``REFRESH_SECONDS`` (the last count, or 1,
    while Kafka cannot say)."""

    clients: Clients
    count: int = 1
    _read_at: float = float("-inf")

    async def now(self) -> int:
        lag = self.clients.lag
        if lag is None or time.monotonic() - self._read_at < REFRESH_SECONDS:
            return self.count
        self._read_at = time.monotonic()
        try:
            self.count = max(await lag.members(), 1)
        except Exception as exc:
            log.warning("Ingest workers not counted", error=_describe(exc))
        return self.count


async def _listen(clients: Clients, wake: asyncio.Event) -> None:
    """Wake the releaser on this deployment's notifications, on a pooled
    connection held while it lasts (listeners go when it is returned)."""
    topic = clients.topics.ingest_requests

    def notified(_conn: Connection, _pid: int, _channel: str, payload: object) -> None:
        if payload == topic:
            wake.set()

    while True:
        try:
            await _listen_once(clients, notified)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("Not listening for waiting documents", error=_describe(exc))
        # Until listening again, the releaser polls.
        await asyncio.sleep(clients.settings.ingest_release_poll_seconds)


async def _listen_once(clients: Clients, notified: Callable[..., None]) -> None:
    """Until the connection is lost."""
    closed = asyncio.Event()
    async with clients.pool.acquire() as conn:
        conn.add_termination_listener(lambda _conn: closed.set())
        await conn.add_listener(ingest_queue.CHANNEL, notified)
        await closed.wait()


async def broker_started(clients: Clients) -> None:
    """Wait for the worker's broker to start: releasing publishes on it."""
    for _ in range(3000):
        if clients.broker.running:
            return
        await asyncio.sleep(0.1)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
