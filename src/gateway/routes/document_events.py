"""``GET /api/documents/events``: the caller's document status as SSE.

First one ``status`` event per document the caller may read (the snapshot,
so no separate list call is needed), then each change as it happens, a
``: ping`` comment every 15 s in between. The stream ends when the client
leaves, when it falls too far behind (see gateway.doc_events), and when the
gateway drains for a restart (the client reconnects to another replica and
gets a fresh snapshot).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import anyio
from fastapi import APIRouter, Request
from sse_starlette import ServerSentEvent

from gateway.deps import CurrentUser, GatewayDep
from gateway.doc_events import DocumentEvents, StatusEvent, Subscription
from gateway.sse import RelayResponse
from gateway.state import Gateway
from shared.errors import Unavailable
from shared.storage import documents

router = APIRouter(prefix="/api/documents", tags=["documents"])

PING_SECONDS = 15
# How often a quiet stream looks whether the gateway is draining; the
# server, once stopping, waits the grace for the stream to end by itself
# (a cleanly ended response) before cutting it.
_DRAIN_POLL_SECONDS = 0.5
_SHUTDOWN_GRACE_SECONDS = 2.0
_SNAPSHOT_PAGE = 500


def _fan_out(request: Request) -> DocumentEvents:
    events: DocumentEvents = request.app.state.document_events
    return events


def to_sse(event: StatusEvent) -> dict[str, str]:
    return {"event": "status", "data": json.dumps(event.payload())}


@router.get(
    "/events",
    response_class=RelayResponse,
    # Out of /openapi.json: a stream that never ends by itself would hang
    # any generic client of the schema (the fuzzing suite reads each answer
    # whole). Documented in docs/integration.md and the README instead.
    include_in_schema=False,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: status`, data `{document_id, filename, status, error,"
            " chunks, at}`: first the current state of each document, then each change",
        }
    },
)
async def document_events(
    request: Request, gateway: GatewayDep, user: CurrentUser
) -> RelayResponse:
    if gateway.draining:
        raise Unavailable("this server is restarting; please retry")
    fan_out = _fan_out(request)
    stopping = anyio.Event()  # set by sse-starlette when the server stops

    async def sse() -> AsyncIterator[dict[str, str]]:
        async with fan_out.subscribe(user.tenant_id, user.id) as subscription:
            for event in await _snapshot(gateway, subscription):
                yield to_sse(event)
            async for event in _live(gateway, subscription, stopping):
                yield to_sse(event)

    return RelayResponse(
        sse(),
        ping=PING_SECONDS,
        # Exactly ``: ping`` (sse-starlette's default adds the time).
        ping_message_factory=lambda: ServerSentEvent(comment="ping"),
        send_timeout=gateway.clients.settings.sse_send_timeout,
        shutdown_event=stopping,
        shutdown_grace_period=_SHUTDOWN_GRACE_SECONDS,
    )


async def _snapshot(gateway: Gateway, subscription: Subscription) -> list[StatusEvent]:
    """Every document the caller may read, oldest first, as it stands now."""
    rows: list[documents.Document] = []
    while True:
        page = await documents.list_for(gateway.clients.pool, subscription.tenant_id,
                                        subscription.user_id, limit=_SNAPSHOT_PAGE,
                                        offset=len(rows))  # fmt: skip
        rows += page
        if len(page) < _SNAPSHOT_PAGE:
            break
    events = [StatusEvent.of_row(doc) for doc in reversed(rows)]
    return [event for event in events if subscription.fresh(event)]


async def _live(
    gateway: Gateway, subscription: Subscription, stopping: anyio.Event
) -> AsyncIterator[StatusEvent]:
    while not (gateway.draining or stopping.is_set()):
        try:
            event = await asyncio.wait_for(subscription.queue.get(), _DRAIN_POLL_SECONDS)
        except TimeoutError:
            continue
        if event is None:
            return
        if subscription.fresh(event):
            yield event
