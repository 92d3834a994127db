"""The SSE response of a chat stream: sse-starlette's, plus a count (and a
quiet end) for clients cut because they stopped reading.

With ``send_timeout`` set, a client that does not take an event within that
time gets its stream closed; sse-starlette then raises ``SendTimeoutError``
out of the response. That is the client's doing, not a server error: it is
counted and logged here instead of surfacing as an unhandled exception.
"""

from __future__ import annotations

import structlog
from prometheus_client import Counter
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

log = structlog.get_logger(__name__)

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
