"""The life of a worker process: connect, subscribe, consume until told to
stop (SIGTERM or SIGINT), then drain and disconnect. Shared by the ingest,
query and sync workers."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from prometheus_client import start_http_server

from shared.config import Settings
from shared.runtime.clients import Clients, open_clients
from shared.runtime.logging import configure_logging
from shared.runtime.metrics import Sampler, forget_process_metrics

log = structlog.get_logger(__name__)


# Work a worker does beside consuming (sweeps, reconciliation): run from
# start-up until it stops.
BackgroundJob = Coroutine[Any, Any, None]
Setup = Callable[[Clients], Awaitable[list[BackgroundJob]]]


async def run_worker(
    settings: Settings,
    service: str,
    setup: Setup,
    *,
    embedder: bool = True,
    consumes: bool = True,
) -> None:
    """``setup`` registers the subscribers and returns the background jobs.
    The consumer group is ``<KAFKA_TOPIC_PREFIX>.<service>``; its lag is
    exported as ``rag_kafka_consumer_lag``. ``embedder``: load the embedding
    model; ``consumes``: read a topic (a worker that only publishes has no
    group lag to read). The sync worker does neither."""
    configure_logging(settings, service)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    group = f"{settings.kafka_topic_prefix}.{service}" if consumes else None
    async with open_clients(settings, service, embedder=embedder, lag_group=group) as clients:
        jobs = await setup(clients)
        await clients.broker.start()
        sampler = Sampler(clients.pool, service, lag=clients.lag)
        await sampler.start()
        tasks = [asyncio.create_task(job) for job in jobs]
        log.info("Worker started", kafka=settings.kafka_bootstrap_servers)
        await stop.wait()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await sampler.stop()
        # No new message is taken from here; those in hand get up to the
        # grace period to finish, then offsets are committed and the
        # consumers leave their groups, so a replacement takes over at once
        # instead of after a session timeout.
        log.info("Worker stopping", grace_seconds=settings.shutdown_grace_seconds)
        await clients.broker.stop()
    forget_process_metrics()
    log.info("Worker stopped")
