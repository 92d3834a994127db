"""Chat: streamed (SSE) and whole answers, and the history of conversations."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import asdict
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Query
from starlette.types import Receive, Scope, Send

from gateway.deps import CurrentUser, GatewayDep, RequestId, json_body, json_body_schema
from gateway.models import ChatAnswer, ChatBody, TurnOut
from gateway.relay import ChatRelay, RelayEvent, StreamEnded, StreamTimeout
from gateway.sse import RelayResponse
from gateway.state import Gateway
from gateway.users import User
from shared import chat_history
from shared.config import Settings
from shared.errors import DeadlineExceeded, InvalidInput, Unavailable
from shared.events import Source

router = APIRouter(prefix="/api/chat", tags=["chat"])
Body = Annotated[ChatBody, Depends(json_body(ChatBody))]


def _relay(gateway: GatewayDep, user: CurrentUser, request_id: str, body: ChatBody) -> ChatRelay:
    if gateway.draining:
        # Another replica (the load balancer's next pick) can take it at once.
        raise Unavailable("this server is restarting; please retry")
    check_options(body, gateway.clients.settings)
    return ChatRelay(
        gateway=gateway,
        user=user,
        correlation_id=request_id,
        conversation_id=body.conversation_id or uuid4(),
        timeout=body.stream_timeout or gateway.clients.settings.stream_timeout,
    )


def check_options(body: ChatBody, settings: Settings) -> None:
    """Refuse what the configured workers cannot do, before anything is sent.
    (The settings themselves cannot ask for it: they are refused at start.)"""
    if settings.has_generator:
        return
    wanted = (("hyde", body.hyde is True), ("reranking=llm", body.reranking == "llm"))
    missing = [name for name, on in wanted if on]
    if missing:
        raise InvalidInput(
            f"{' and '.join(missing)} {'need' if len(missing) > 1 else 'needs'} a generative"
            " model: set LLM_PROVIDER (openai or bedrock); the offline extractive answerer"
            " cannot write text"
        )


def to_sse(event: RelayEvent) -> dict[str, str]:
    """An event as SSE: ``event:`` is its type, ``data:`` its JSON payload."""
    data: Any
    match event:
        case StreamTimeout(seconds=seconds):
            data = {"message": f"no answer for {seconds:g} seconds", "stream_timeout": seconds}
        case StreamEnded(reason=reason):
            data = {"message": event.message, "reason": reason}
        case _ if event.type == "token":
            data = {"text": event.text, "seq": event.seq}
        case _ if event.type == "sources":
            data = [s.model_dump(mode="json") for s in event.sources]
        case _ if event.type == "error":
            data = {"message": event.message, "seq": event.seq}
        case _:
            data = {
                "conversation_id": str(event.conversation_id),
                "seq": event.seq,
                "cited": event.cited,
            }
    return {"event": event.type, "data": json.dumps(data)}


@router.post(
    "/stream",
    response_class=RelayResponse,
    openapi_extra=json_body_schema(ChatBody),
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE events"}},
)
async def chat_stream(
    gateway: GatewayDep, user: CurrentUser, request_id: RequestId, body: Body
) -> RelayResponse:
    relay = _relay(gateway, user, request_id, body)
    slot = _StreamSlot(gateway, user, relay.stream_id)
    await slot.take()
    try:
        events = await relay.start(body.message, body.top_k, body.options())
    except BaseException:
        slot.give_back()
        raise

    async def sse() -> AsyncIterator[dict[str, str]]:
        # aclosing: when the response closes this generator (client gone,
        # send timed out) the relay is closed now too, and cancels the answer.
        async with aclosing(events):
            async for event in events:
                yield to_sse(event)

    return _SlotResponse(
        sse(),
        slot=slot,
        ping=15,
        send_timeout=gateway.clients.settings.sse_send_timeout,
        headers={"X-Conversation-ID": str(relay.conversation_id)},
    )


class _StreamSlot:
    """One of the user's MAX_CONCURRENT_STREAMS, held while the stream is
    open; given back once however the stream ends (the slot also expires in
    Redis, should this gateway die first)."""

    def __init__(self, gateway: Gateway, user: User, stream_id: str) -> None:
        self._gateway, self._user, self._stream_id = gateway, user, stream_id
        self._held = False

    async def take(self) -> None:
        if self._gateway.limits is not None:
            await self._gateway.limits.open_stream(self._user.id, self._stream_id)
            self._held = True

    def give_back(self) -> None:
        # A task of its own: the request may be being cancelled right now.
        if self._held and self._gateway.limits is not None:
            self._held = False
            self._gateway.spawn(self._gateway.limits.close_stream(self._user.id, self._stream_id))


class _SlotResponse(RelayResponse):
    def __init__(self, *args: Any, slot: _StreamSlot, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slot.give_back()


@router.post("", response_model=ChatAnswer, openapi_extra=json_body_schema(ChatBody))
async def chat(
    gateway: GatewayDep, user: CurrentUser, request_id: RequestId, body: Body
) -> ChatAnswer:
    relay = _relay(gateway, user, request_id, body)
    # A whole answer is a stream the gateway reads for the client: it counts
    # against MAX_CONCURRENT_STREAMS the same way.
    slot = _StreamSlot(gateway, user, relay.stream_id)
    await slot.take()
    try:
        return await _collect(relay, body)
    finally:
        slot.give_back()


async def _collect(relay: ChatRelay, body: ChatBody) -> ChatAnswer:
    words: list[str] = []
    sources: list[Source] = []
    cited: list[int] = []
    async for event in await relay.start(body.message, body.top_k, body.options()):
        if isinstance(event, StreamTimeout):
            raise DeadlineExceeded(f"no answer for {event.seconds:g} seconds")
        if isinstance(event, StreamEnded):
            raise Unavailable(event.message)
        if event.type == "token":
            words.append(event.text)
        elif event.type == "sources":
            sources = event.sources
        elif event.type == "done":
            cited = event.cited
        elif event.type == "error":
            raise Unavailable(event.message)
    return ChatAnswer(
        answer="".join(words),
        sources=sources,
        cited=cited,
        conversation_id=relay.conversation_id,
    )


@router.get("/history", response_model=list[TurnOut])
async def history(
    gateway: GatewayDep,
    user: CurrentUser,
    conversation_id: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[TurnOut]:
    turns = await chat_history.list_turns(
        gateway.clients.pool, user.tenant_id, user.id, conversation_id=conversation_id, limit=limit
    )
    return [TurnOut(**asdict(t)) for t in turns]
