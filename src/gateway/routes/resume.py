"""Resuming a chat stream after a dropped connection:
``GET /api/chat/stream/{stream_id}`` with ``Last-Event-ID``, as a browser's
EventSource reconnects (the same URL it was streaming from, the last id it
got in the header). The stream id comes in the chat's ``X-Stream-ID``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Request

from gateway.http.deps import CurrentUser, GatewayDep
from gateway.http.openapi import errors, event_stream
from gateway.routes.chat import SSE_DATA, SSE_EVENTS, to_sse
from gateway.streams.chat_stream import OpenChat, StreamSlot, relay_response, with_ids
from gateway.streams.leaving import START_ID
from gateway.streams.relay import RelayEvent, StreamEnded, StreamTimeout
from gateway.streams.resume import EVENT_ID, STREAM_RESUMES, Position, resume
from gateway.streams.sse import RelayResponse
from shared.errors import InvalidInput, NotFound, TooManyRequests, Unavailable
from shared.storage import chat_streams

router = APIRouter(prefix="/api/chat", tags=["chat"])

StreamId = Annotated[
    str,
    Path(pattern="^[0-9a-f]{32}$", description="The stream's `X-Stream-ID`"),
]
# Read by the route (an id it did not send is a 400, like one not of the
# stream), documented here. Its schema names no type (a header is text):
# schemathesis 4.32's coverage phase crashes on the type mutations of a
# header parameter (a SystemError from CPython 3.11's ast.parse).
LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "description": "The `id` of the last event received; none (or `start`): from the beginning",
    "schema": {"pattern": EVENT_ID},
}
RESUME_EVENTS = (
    "The events of the stream after `Last-Event-ID`, each once and in order, then the rest"
    " as the answer is written, whichever gateway replica answers; none if the client had"
    " the terminal event already. A stream that ended meanwhile for lack of a client (no"
    " resume within STREAM_RESUME_GRACE_SECONDS) or of an answer gives its one terminal"
    " event at once: `error` (`reason: abandoned` or `worker_lost`) or `timeout`. " + SSE_EVENTS
)


@router.get(
    "/stream/{stream_id}",
    response_class=RelayResponse,
    openapi_extra={"parameters": [LAST_EVENT_ID]},
    responses={
        **errors(
            (InvalidInput, "`Last-Event-ID` is not an event of this stream, or not an id at all"),
            (NotFound, "No such stream of the caller's: unknown, someone else's, or expired"),
            (TooManyRequests, "MAX_CONCURRENT_STREAMS chats of the user's are running"),
        ),
        200: event_stream(RESUME_EVENTS, **SSE_DATA),
    },
)
async def resume_stream(
    gateway: GatewayDep,
    user: CurrentUser,
    stream_id: StreamId,
    request: Request,
) -> RelayResponse:
    if gateway.draining:
        raise Unavailable("this server is restarting; please retry")
    last_event_id = request.headers.get("Last-Event-ID") or START_ID
    position = Position.parse(last_event_id)
    slot = StreamSlot(gateway, user, stream_id)
    await slot.take()
    try:
        attached = await chat_streams.attach(
            gateway.clients.redis, user.tenant_id, user.id, stream_id
        )
        if attached is None:
            raise NotFound("no such stream: it is not yours, or ended long ago")
        if attached.ended is not None:
            slot.give_back()
            return _ended(attached, last_event_id)
        resumed = await resume(gateway, user, attached.request, attached.start, position)
    except BaseException:
        slot.give_back()
        raise
    if resumed is None:
        slot.give_back()
        return RelayResponse(_nothing())
    relay, events = resumed
    chat = OpenChat(relay, slot, events)
    return relay_response(gateway, chat, with_ids(relay, to_sse))


def _ended(attached: chat_streams.Attached, event_id: str) -> RelayResponse:
    """The one terminal event of a stream that ended while nobody watched."""
    STREAM_RESUMES.labels("ended").inc()
    request = attached.request
    event: RelayEvent
    if attached.ended == "timeout":
        event = StreamTimeout((request.deadline - request.created_at).total_seconds())
    else:
        event = StreamEnded(attached.ended or "abandoned")

    async def one() -> AsyncIterator[dict[str, str]]:
        yield {**to_sse(event), "id": event_id}

    return RelayResponse(one())


async def _nothing() -> AsyncIterator[dict[str, str]]:
    return
    yield
