"""Building the FastAPI app and its lifespan: clients in, clients out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from gateway import errors
from gateway.lease import PartitionLease
from gateway.middleware import RequestContext
from gateway.replies import ReplyRouter
from gateway.routes import auth, chat, documents, health
from gateway.security import Tokens
from gateway.state import Gateway
from shared.clients import open_clients
from shared.config import Settings
from shared.logging import configure_logging

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
            partition = settings.gateway_reply_partition
            if partition is None:
                partition = await lease.acquire()
            replies = ReplyRouter(
                settings.kafka_bootstrap_servers, clients.topics.chat_replies, partition
            )
            await replies.start()
            app.state.gateway = gateway = Gateway(clients, replies, tokens)
            log.info("Gateway started", reply_partition=partition)
            try:
                yield
            finally:
                await gateway.drain()
                await replies.stop()
                await lease.release()
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
