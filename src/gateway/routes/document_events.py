"""``GET /api/documents/events``: the caller's document status as SSE.

First one ``status`` event per document the caller may read (the snapshot,
so no separate list call is needed), then each change as it happens, a
``: ping`` comment every 15 s in between. The stream ends when the client
leaves, when it falls too far behind (see gateway.doc_events), and when the
gateway drains for a restart (the client reconnects to another replica and
gets a fresh snapshot). It also ends, with ``event: ended``, once the
credential it was opened with stops authenticating (logout, a revoked session
or API key, a disabled user, an expired access token): the request's own
check is re-run every EVENTS_SESSION_CHECK_SECONDS (``SessionWatch``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import structlog
from fastapi import APIRouter
from sse_starlette import ServerSentEvent

from gateway.doc_events import StatusEvent, Subscription
from gateway.http.deps import BearerCredentials, CurrentPrincipal, GatewayDep, authenticate
from gateway.http.errors import DEPENDENCY_ERRORS
from gateway.http.openapi import errors, event_stream
from gateway.models import DocumentStatusEvent, EndReason, StreamEndedEvent
from gateway.state import Gateway
from gateway.streams.sse import RelayResponse
from shared.errors import AuthError, Unavailable
from shared.storage import documents

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/documents", tags=["documents"])

PING_SECONDS = 15
# How often a quiet stream looks whether the gateway is draining; the
# server, once stopping, waits the grace for the stream to end by itself
# (a cleanly ended response) before cutting it.
_DRAIN_POLL_SECONDS = 0.5
_SHUTDOWN_GRACE_SECONDS = 2.0
_SNAPSHOT_PAGE = 500


# Why a stream ended, in its last event (EndReason): the credential no
# longer authenticates (a new request with it gets 401), or it could not be
# checked (Postgres unreachable; a new request gets 503 until it is back).


def to_sse(event: StatusEvent) -> dict[str, str]:
    return {"event": "status", "data": json.dumps(event.payload())}


def ended_sse(reason: EndReason) -> dict[str, str]:
    return {"event": "ended", "data": json.dumps(StreamEndedEvent(reason=reason).model_dump())}


class SessionWatch:
    """Re-runs ``check`` (the request's authentication, with the credential
    the stream was opened with) once ``interval`` seconds have passed since
    the last success; ``ended()`` is None while it passes, else why not."""

    def __init__(
        self,
        check: Callable[[], Awaitable[object]],
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._interval = interval
        self._clock = clock
        self._due = clock() + interval

    async def ended(self) -> EndReason | None:
        if self._clock() < self._due:
            return None
        try:
            await self._check()
        except AuthError:
            return "session_ended"
        except DEPENDENCY_ERRORS as exc:
            # Fail closed: a stream whose caller cannot be confirmed ends.
            log.warning("Document event stream ended: session not checked", error=repr(exc))
            return "unavailable"
        self._due = self._clock() + self._interval
        return None


@router.get(
    "/events",
    response_class=RelayResponse,
    # A stream that never ends by itself: generic clients of the schema that
    # read each answer whole would hang on it (the fuzzing suite leaves it out).
    responses={
        **errors((Unavailable, "This server is restarting: reconnect")),
        200: event_stream(
            "First one `status` event for each document the caller may read (the current"
            " state), then one for each change; a `: ping` comment every 15 s; `ended` once"
            " the credential stops authenticating. The stream ends too when the gateway"
            " drains for a restart or the client falls behind: reconnect.",
            status=DocumentStatusEvent,
            ended=StreamEndedEvent,
        ),
    },
)
async def document_events(
    gateway: GatewayDep,
    principal: CurrentPrincipal,
    credentials: BearerCredentials,
) -> RelayResponse:
    if gateway.draining:
        raise Unavailable("this server is restarting; please retry")
    assert credentials is not None  # CurrentPrincipal refuses a request without
    credential, user = credentials.credentials, principal.user
    fan_out = gateway.document_events
    stopping = anyio.Event()  # set by sse-starlette when the server stops
    interval = gateway.clients.settings.events_session_check_seconds
    session = SessionWatch(lambda: authenticate(gateway, credential), interval)

    async def sse() -> AsyncIterator[dict[str, str]]:
        async with fan_out.subscribe(user.tenant_id, user.id) as subscription:
            for event in await _snapshot(gateway, subscription):
                yield to_sse(event)
            async for change in _live(gateway, subscription, stopping, session):
                if isinstance(change, StatusEvent):
                    yield to_sse(change)
                else:
                    log.info("Document event stream ended", reason=change, user_id=str(user.id))
                    yield ended_sse(change)

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
        page = await documents.list_for(
            gateway.clients.pool,
            subscription.tenant_id,
            subscription.user_id,
            limit=_SNAPSHOT_PAGE,
            offset=len(rows),
        )
        rows += page
        if len(page) < _SNAPSHOT_PAGE:
            break
    events = [StatusEvent.of_row(doc) for doc in reversed(rows)]
    return [event for event in events if subscription.fresh(event)]


async def _live(
    gateway: Gateway, subscription: Subscription, stopping: anyio.Event, session: SessionWatch
) -> AsyncIterator[StatusEvent | EndReason]:
    """The changes, then an end reason if the session check fails: it runs
    when due, on a quiet stream too, and before a change is passed on."""
    while not (gateway.draining or stopping.is_set()):
        try:
            event = await asyncio.wait_for(subscription.queue.get(), _DRAIN_POLL_SECONDS)
        except TimeoutError:
            event = None  # a quiet stream: only the check below
        else:
            if event is None:
                return  # ended by the fan-out (a slow client, a drain)
        reason = await session.ended()
        if reason is not None:
            yield reason
            return
        if event is not None and subscription.fresh(event):
            yield event
