"""Chat: streamed (SSE) and whole answers, and the history of conversations."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import asdict, dataclass
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Query
from starlette.types import Receive, Scope, Send

from gateway.deps import CurrentUser, GatewayDep, RequestId, json_body, json_body_schema
from gateway.models import ChatAnswer, ChatBody, TurnOut
from gateway.relay import ChatRelay, RelayEvent, StreamEnded, StreamTimeout
from gateway.sse import RelayResponse, gather_writes
from gateway.state import Gateway
from gateway.users import User
from shared.config import Settings
from shared.contracts.events import Source, Turn
from shared.errors import DeadlineExceeded, InvalidInput, Unavailable
from shared.storage import chat_history

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
                "grounded": event.grounded,
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
    chat = await open_chat(gateway, user, request_id, body)
    return relay_response(gateway, chat, _as_sse)


async def _as_sse(events: AsyncIterator[RelayEvent]) -> AsyncGenerator[dict[str, str], None]:
    async for event in events:
        yield to_sse(event)


@dataclass(frozen=True)
class OpenChat:
    """A published chat request and its replies, holding one of the user's
    stream slots until ``relay_response`` or ``collect`` give it back."""

    relay: ChatRelay
    slot: _StreamSlot
    events: AsyncGenerator[RelayEvent, None]


async def open_chat(
    gateway: Gateway,
    user: User,
    request_id: str,
    body: ChatBody,
    history: Sequence[Turn] | None = None,
) -> OpenChat:
    """Take a stream slot and publish the request (with ``history``, the
    conversation so far, when the client keeps it instead of the server)."""
    relay = _relay(gateway, user, request_id, body)
    slot = _StreamSlot(gateway, user, relay.stream_id)
    await slot.take()
    try:
        events = await relay.start(body.message, body.top_k, body.options(), history)
    except BaseException:
        slot.give_back()
        raise
    return OpenChat(relay, slot, events)


SseRenderer = Callable[[AsyncIterator[RelayEvent]], AsyncGenerator[dict[str, str], None]]


def relay_response(
    gateway: Gateway, chat: OpenChat, render: SseRenderer, sep: str | None = None
) -> RelayResponse:
    """The chat's replies as SSE, each event turned into messages by ``render``."""

    async def sse() -> AsyncIterator[bytes]:
        # aclosing: when the response closes this generator (client gone,
        # send timed out) the relay is closed now too, and cancels the answer.
        async with (
            aclosing(chat.events),
            aclosing(render(chat.events)) as messages,
            aclosing(gather_writes(messages, chat.relay.pending, sep)) as writes,
        ):
            async for write in writes:
                yield write

    return _SlotResponse(
        sse(),
        slot=chat.slot,
        ping=15,
        sep=sep,
        send_timeout=gateway.clients.settings.sse_send_timeout,
        headers={"X-Conversation-ID": str(chat.relay.conversation_id)},
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
    return await collect(await open_chat(gateway, user, request_id, body))


async def collect(chat: OpenChat) -> ChatAnswer:
    """The whole answer. A whole answer is a stream the gateway reads for the
    client: it holds its slot of MAX_CONCURRENT_STREAMS the same way."""
    try:
        async with aclosing(chat.events):
            return await _collect(chat.relay, chat.events)
    finally:
        chat.slot.give_back()


async def _collect(relay: ChatRelay, events: AsyncIterator[RelayEvent]) -> ChatAnswer:
    words: list[str] = []
    sources: list[Source] = []
    cited: list[int] = []
    grounded = True
    async for event in events:
        if isinstance(event, StreamTimeout):
            raise DeadlineExceeded(f"no answer for {event.seconds:g} seconds")
        if isinstance(event, StreamEnded):
            raise Unavailable(event.message)
        if event.type == "token":
            words.append(event.text)
        elif event.type == "sources":
            sources = event.sources
        elif event.type == "done":
            cited, grounded = event.cited, event.grounded
        elif event.type == "error":
            raise Unavailable(event.message)
    return ChatAnswer(
        answer="".join(words),
        sources=sources,
        cited=cited,
        grounded=grounded,
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
