"""The life of a worker process: connect, subscribe, consume until told to
stop, then drain and disconnect. Shared by the ingest and query workers."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

import structlog
from prometheus_client import start_http_server

from shared.clients import Clients, open_clients
from shared.config import Settings
from shared.logging import configure_logging

log = structlog.get_logger(__name__)


async def run_worker(
    settings: Settings, service: str, setup: Callable[[Clients], Awaitable[None]]
) -> None:
    configure_logging(settings, service)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with open_clients(settings, service) as clients:
        await setup(clients)
        await clients.broker.start()
        log.info("Worker started", kafka=settings.kafka_bootstrap_servers)
        await stop.wait()
        log.info("Worker stopping")
    log.info("Worker stopped")
