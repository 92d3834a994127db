"""Building the FastAPI app and its lifespan: clients in, clients out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from gateway import errors
from gateway.drain import DrainOnSignal
from gateway.lease import PartitionLease
from gateway.middleware import RequestContext
from gateway.replies import ReplyRouter
from gateway.routes import auth, chat, documents, health
from gateway.security import Tokens
from gateway.state import Gateway
from shared.clients import open_clients
from shared.config import Settings
from shared.logging import configure_logging
from shared.metrics import Sampler, forget_process_metrics

log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings, "gateway")
    tokens = Tokens(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_clients(settings, "gateway", embedder=False) as clients:
            await clients.broker.start()
            lease = PartitionLease(
                clients.redis, clients.topics.chat_replies, settings.kafka_reply_partitions
            )
            if settings.gateway_reply_partition is None:
                partition = await lease.acquire()
            else:
                partition = lease.pin(settings.gateway_reply_partition)
            replies = ReplyRouter(
                settings.kafka_bootstrap_servers, clients.topics.chat_replies, partition
            )
            await replies.start()
            if lease.state != "pinned":
                lease.keep(replies.move)
            app.state.gateway = gateway = Gateway(clients, replies, tokens, lease)
            sampler = Sampler(clients.pool, "gateway")
            await sampler.start()
            signals = DrainOnSignal(gateway, settings.shutdown_grace_seconds)
            signals.install()
            log.info("Gateway started", reply_partition=partition)
            try:
                yield
            finally:
                signals.uninstall()
                await sampler.stop()
                await gateway.drain()
                await replies.stop()
                await lease.release()
                forget_process_metrics()
                log.info("Gateway stopped")

    app = FastAPI(
        title="ragstream",
        summary="Ask questions of your documents; get streamed answers with citations.",
        version="0.1.0",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(RequestContext)
    for module in (health, auth, documents, chat):
        app.include_router(module.router)
    return app
