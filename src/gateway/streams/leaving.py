"""A client leaving a resumable stream, and the grace it gets to come back.

A connection that closes before its answer ended (the client left) detaches
from the stream's record in Redis (``shared.storage.chat_streams``);
STREAM_RESUME_GRACE_SECONDS later the answer is cancelled if nobody is
attached and nobody attached meanwhile, on this replica or any other. A
connection the gateway cut (the client fell behind, or the gateway drains)
was told to ask again: it gets no grace, but its end cancels the answer only
if no other connection (a resume) watches it. A gateway that stops drops its
pending checks (the answer then runs to its end, for a client that may
resume elsewhere). Without Redis nothing is resumable, and leaving cancels
at once.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import structlog
from prometheus_client import Counter
from redis.exceptions import RedisError

from gateway.state import Gateway
from shared.config import STREAM_TIMEOUT_MAX
from shared.contracts.events import ChatRequest
from shared.storage import chat_streams

log = structlog.get_logger(__name__)

# Ends of one connection, not of the stream: another connection may be
# watching it. Only a client that left may come back; one told to ask again
# (cut for falling behind, or by a draining gateway) gets no grace.
LEAVING = ("client_left", "overflow", "shutdown")
# The id of events before any reply: resuming from it starts at the beginning.
START_ID = "start"
# A stream can be resumed this long after it opened (while it has not ended):
# the bound on a stream's life that its slot of MAX_CONCURRENT_STREAMS has too.
RECORD_SECONDS = 2 * int(STREAM_TIMEOUT_MAX)

STREAM_LEAVES = Counter(
    "rag_gateway_stream_leaves_total",
    "Clients gone from a resumable stream before its end, by what became of its answer:"
    " abandoned (cancelled, nobody resumed it within STREAM_RESUME_GRACE_SECONDS),"
    " watched (resumed, or still open elsewhere), answered (finished meanwhile), gone",
    ["outcome"],
)
_REDIS_ERRORS = (RedisError, OSError)
# Ends of the stream itself, told to whoever resumes it later.
_ENDS: dict[str, chat_streams.EndReason] = {"timeout": "timeout", "worker_lost": "worker_lost"}


async def record(gateway: Gateway, request: ChatRequest, start: int) -> bool:
    """Make the stream resumable; False (and not resumable) without Redis."""
    try:
        await chat_streams.open_stream(gateway.clients.redis, request, start, RECORD_SECONDS)
    except _REDIS_ERRORS as exc:
        log.warning("Stream not resumable: Redis unavailable", error=str(exc))
        return False
    return True


class Leaving:
    def __init__(self, gateway: Gateway, tenant_id: UUID, stream_id: str) -> None:
        self._gateway, self._tenant_id, self._stream_id = gateway, tenant_id, stream_id

    def leave(self, reason: str, cancel: Callable[[], None]) -> None:
        """This connection is gone: ``cancel()`` the answer once nobody
        resumed it within the grace, unless another connection watches it."""
        settings = self._gateway.clients.settings
        grace = settings.stream_resume_grace_seconds if reason == "client_left" else 0.0
        # A task of its own: this runs while the request's scope is cancelled.
        self._gateway.spawn(self._detach(grace, cancel))

    async def _detach(self, grace: float, cancel: Callable[[], None]) -> None:
        redis = self._gateway.clients.redis
        try:
            keep = int(grace) + int(STREAM_TIMEOUT_MAX)
            attaches = await chat_streams.detach(redis, self._tenant_id, self._stream_id, keep)
        except _REDIS_ERRORS as exc:
            log.warning("Stream not detached: Redis unavailable; cancelling", error=str(exc))
            cancel()
            return

        async def check() -> None:
            await self._abandon_unless_resumed(attaches, cancel)

        if grace > 0:
            log.info("Client left; the answer goes on for a resume", grace_seconds=grace)
            self._gateway.later(grace, check)
        else:
            await check()

    async def _abandon_unless_resumed(self, attaches: int, cancel: Callable[[], None]) -> None:
        redis = self._gateway.clients.redis
        outcome: chat_streams.Abandoned
        try:
            outcome = await chat_streams.abandon(redis, self._tenant_id, self._stream_id, attaches)
        except _REDIS_ERRORS as exc:
            log.warning("Resume not checked: Redis unavailable; cancelling", error=str(exc))
            outcome = "abandoned"
        STREAM_LEAVES.labels(outcome).inc()
        if outcome == "abandoned":
            log.info("Nobody resumed the stream; cancelling its answer")
            cancel()

    def end(self, reason: str) -> None:
        """The stream ended for everyone: a resume is told so at once."""
        if reason in _ENDS:
            self._gateway.spawn(self._end(_ENDS[reason]))

    async def _end(self, reason: chat_streams.EndReason) -> None:
        try:
            await chat_streams.end(
                self._gateway.clients.redis, self._tenant_id, self._stream_id, reason
            )
        except _REDIS_ERRORS as exc:
            log.warning("Stream end not recorded: Redis unavailable", error=str(exc))
