"""One search round trip: publish the request on ``rag.search.requests``,
then wait for its one reply on this replica's reply partition, routed as a
chat's replies are (``ReplyRouter.expect``: by the stream id this gateway
chose, for the caller's tenant and user only).

A search holds one of the user's MAX_CONCURRENT_STREAMS while it waits, as a
whole chat answer does: it occupies a query worker the same way."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from gateway.identity.users import User
from gateway.models import SearchBody, SearchOut
from gateway.state import Gateway
from gateway.streams.chat_stream import StreamSlot, check_options
from shared.contracts.events import ReplyTo, SearchReply, SearchRequest, utcnow
from shared.errors import DeadlineExceeded, InvalidInput, Unavailable
from shared.runtime.kafka import publish

log = structlog.get_logger(__name__)


async def search(gateway: Gateway, user: User, request_id: str, body: SearchBody) -> SearchOut:
    if gateway.draining:
        raise Unavailable("this server is restarting; please retry")
    settings = gateway.clients.settings
    check_options(body, settings)
    timeout = body.timeout or settings.stream_timeout
    replies = gateway.replies
    request = SearchRequest(
        correlation_id=request_id,
        tenant_id=user.tenant_id,
        user_id=user.id,
        query=body.query,
        top_k=body.top_k,
        options=body.options(),
        deadline=utcnow() + timedelta(seconds=timeout),
        reply_to=ReplyTo(topic=replies.topic, partition=replies.partition),
    )
    slot = StreamSlot(gateway, user, request.stream_id)
    await slot.take()
    try:
        reply = await _round_trip(gateway, request, timeout)
    finally:
        slot.give_back()
    return _outcome(body, reply)


async def _round_trip(gateway: Gateway, request: SearchRequest, seconds: float) -> SearchReply:
    replies, clients = gateway.replies, gateway.clients
    waiter = replies.expect(request.stream_id, request.tenant_id, request.user_id)
    try:
        await publish(
            clients.broker, clients.topics.search_requests, request, key=request.stream_id
        )
        async with asyncio.timeout(seconds):
            return await waiter.reply
    except TimeoutError:
        log.warning("Search timeout", timeout=seconds)
        raise DeadlineExceeded(f"no passages within {seconds:g} seconds") from None
    finally:
        replies.forget(request.stream_id)


def _outcome(body: SearchBody, reply: SearchReply) -> SearchOut:
    if reply.outcome == "refused":
        raise InvalidInput(reply.error or "the search was refused")
    if reply.outcome == "failed":
        raise Unavailable(reply.error or "the search failed; please try again")
    return SearchOut(query=body.query, passages=reply.passages)
