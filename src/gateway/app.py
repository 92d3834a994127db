"""Building the FastAPI app and its lifespan: clients in, clients out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware

from gateway.doc_events import DocumentEvents
from gateway.http import errors, openapi
from gateway.http.limits import Limits
from gateway.http.middleware import BodyLimits, RequestContext, SecurityHeaders
from gateway.http.throttle import limit_requests
from gateway.identity.oidc import OidcVerifier
from gateway.identity.security import Tokens
from gateway.routes import (
    admin,
    asyncapi,
    auth,
    chat,
    conversations,
    document_events,
    documents,
    feedback,
    groups,
    health,
    keys,
    openai_compat,
    resume,
    search,
    sources,
    sso,
    sso_device,
    web,
)
from gateway.state import Gateway
from gateway.streams.drain import DrainOnSignal
from gateway.streams.lease import PartitionLease
from gateway.streams.replies import ReplyRouter
from shared.config import Settings
from shared.runtime.clients import open_clients
from shared.runtime.kafka import kafka_security
from shared.runtime.logging import configure_logging
from shared.runtime.metrics import Sampler, forget_process_metrics
from shared.storage import blob_root

log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings, "gateway")
    tokens = Tokens(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_clients(settings, "gateway", embedder=False, oidc=True) as clients:
            await blob_root.claim_at_start(clients.pool, clients.blobs)  # its marker, if new
            await clients.broker.start()
            lease = PartitionLease(
                clients.redis, clients.topics.chat_replies, settings.kafka_reply_partitions
            )
            if settings.gateway_reply_partition is None:
                partition = await lease.acquire()
            else:
                partition = lease.pin(settings.gateway_reply_partition)
            replies = ReplyRouter(
                settings.kafka_bootstrap_servers,
                clients.topics.chat_replies,
                partition,
                security=kafka_security(settings),
            )
            await replies.start()
            document_events = DocumentEvents.of(clients)
            await document_events.start()
            if lease.state != "pinned":
                lease.keep(replies.move)
            app.state.gateway = gateway = Gateway(
                clients,
                replies,
                tokens,
                lease,
                document_events,
                limits=Limits(clients.redis, settings),
                oidc=OidcVerifier(clients.oidc_http, settings) if clients.oidc_http else None,
                request_partitions=await replies.partitions_of(clients.topics.chat_requests),
            )
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
                await document_events.stop()
                await replies.stop()
                await lease.release()
                forget_process_metrics()
                log.info("Gateway stopped")

    app = FastAPI(
        title="ragstream",
        summary="Ask questions of your documents; get streamed answers with citations.",
        version="0.1.0",
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
    )
    errors.install(app)
    add_middleware(app, settings, tokens)
    for module in (health, auth, sso, sso_device, asyncapi, web):
        app.include_router(module.router)
    # Every route of these needs a user, and counts against the user's rate.
    # document_events before documents: its /events is not a document id.
    for module in (
        document_events,
        documents,
        chat,
        resume,
        conversations,
        feedback,
        keys,
        admin,
        groups,
        sources,
        search,
    ):
        app.include_router(
            module.router,
            dependencies=[Depends(limit_requests)],
            responses=openapi.errors(*openapi.SIGNED_IN),
        )
    # Its router documents the same errors, in OpenAI's shape.
    app.include_router(openai_compat.router, dependencies=[Depends(limit_requests)])
    openapi.install(app, without_422=f"{openai_compat.router.prefix}/")
    return app


def add_middleware(app: FastAPI, settings: Settings, tokens: Tokens) -> None:
    """Outermost first: the request id and security headers wrap every
    answer, CORS headers too when origins are configured (so a browser can
    read a 401 or 413), and body bounds sit nearest the routes."""
    app.add_middleware(BodyLimits, tokens=tokens, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "Last-Event-ID"],
            expose_headers=["X-Request-ID", "X-Conversation-ID", "X-Stream-ID", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestContext)
