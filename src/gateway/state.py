"""What the gateway holds for its lifetime, built once in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.doc_events import DocumentEvents
from gateway.http.limits import Limits
from gateway.identity.oidc import OidcVerifier
from gateway.identity.security import Tokens
from gateway.readiness import ReadinessCache
from gateway.streams.lease import PartitionLease
from gateway.streams.replies import ReplyRouter
from shared.runtime.clients import Clients
from shared.storage.migrate import Revisions, code_revisions

log = structlog.get_logger(__name__)

# How long a stopping gateway waits for its background work.
BACKGROUND_GRACE_SECONDS = 5.0


@dataclass
class Gateway:
    clients: Clients
    replies: ReplyRouter
    tokens: Tokens
    lease: PartitionLease
    # Document status changes, fanned out to this process's SSE subscribers
    # (gateway.doc_events; read by gateway.routes.document_events).
    document_events: DocumentEvents
    # Rate and stream limits (gateway.http.limits); None only in tests that build
    # a Gateway by hand, where nothing is limited.
    limits: Limits | None = None
    # The OpenID provider's token check (gateway.identity.oidc); None
    # without OIDC_ISSUER_URL.
    oidc: OidcVerifier | None = None
    # The chat request topic's partitions: a request asked again after its
    # worker died goes to each, so whichever live worker reads first takes it.
    request_partitions: list[int] = field(default_factory=list)
    # Set on SIGTERM (gateway.streams.drain): open streams may finish, new ones get 503.
    draining: bool = False
    # The last dependency checks (gateway.routes.health), shared for a second.
    readiness: ReadinessCache[Any] = field(default_factory=ReadinessCache)
    # The schema revision this code needs: readiness waits for it.
    revisions: Revisions = field(default_factory=code_revisions)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # Work due later (gateway.streams.leaving's grace): dropped on shutdown.
    _timers: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` beyond the current request; failures are logged."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def later(self, delay: float, work: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run ``work()`` in ``delay`` seconds, unless the gateway stops first."""

        async def run() -> None:
            await asyncio.sleep(delay)
            self._timers.discard(task)  # begun: it is ordinary work from now on
            self._tasks.add(task)
            await work()

        task = asyncio.create_task(run())
        self._timers.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._timers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Background task failed", exc_info=task.exception())

    async def drain(self, grace: float = BACKGROUND_GRACE_SECONDS) -> None:
        """Give background work (cancels, slot releases) ``grace`` seconds
        to finish before the clients close. What is still running then is
        cancelled and counted in one line, rather than each failing against
        a closed producer with a traceback of its own. Work not due yet is
        dropped."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if not self._tasks:
            return
        _, unfinished = await asyncio.wait(self._tasks, timeout=grace)
        if unfinished:
            log.warning("Background work cut at shutdown", tasks=len(unfinished))
            for task in unfinished:
                task.cancel()
            await asyncio.wait(unfinished)
