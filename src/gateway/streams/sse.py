"""The SSE response of a chat stream: sse-starlette's, plus a count (and a
quiet end) for clients cut because they stopped reading.

With ``send_timeout`` set, a client that does not take an event within that
time gets its stream closed; sse-starlette then raises ``SendTimeoutError``
out of the response. That is the client's doing, not a server error: it is
counted and logged here instead of surfacing as an unhandled exception.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping

import structlog
from prometheus_client import Counter
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

log = structlog.get_logger(__name__)

# A write gathers at most this much; more waits for the next one.
MAX_WRITE_BYTES = 64 * 1024

SLOW_CLIENTS = Counter(
    "rag_gateway_slow_clients_total",
    "Streams cut because the client took longer than SSE_SEND_TIMEOUT to accept an event",
)


class RelayResponse(EventSourceResponse):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            SLOW_CLIENTS.inc()
            log.warning("Slow client cut", send_timeout=self.send_timeout)


async def gather_writes(
    messages: AsyncIterator[Mapping[str, str]], pending: Callable[[], int], sep: str | None
) -> AsyncGenerator[bytes, None]:
    """The messages as SSE bytes, several events to a write while more are
    already waiting (``pending()`` above zero): each write costs the same
    whatever its size (the response's send timeout, the middlewares, the
    server), so a burst goes out in a few. Nothing is held back: a write is
    made as soon as the next message would have to be waited for.
    """
    chunks: list[bytes] = []
    size = 0
    async for message in messages:
        chunk = ServerSentEvent(
            data=message.get("data"), event=message.get("event"), id=message.get("id"), sep=sep
        ).encode()
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_WRITE_BYTES or not pending():
            yield b"".join(chunks)
            chunks.clear()
            size = 0
    if chunks:
        yield b"".join(chunks)
