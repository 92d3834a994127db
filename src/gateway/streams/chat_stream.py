"""A chat, opened and carried to the client: the request published to Kafka
(``open_chat``), holding one of the user's MAX_CONCURRENT_STREAMS, and its
replies either streamed as SSE (``relay_response``) or read whole for the
client (``collect``). Both chat APIs use it, ``gateway.routes.chat`` and
``gateway.routes.openai_compat``; only their shapes differ."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from starlette.types import Receive, Scope, Send

from gateway.identity.users import User
from gateway.models import ChatAnswer, ChatBody, SearchBody
from gateway.state import Gateway
from gateway.streams.inbox import AttemptReset
from gateway.streams.relay import ChatRelay, RelayEvent, StreamEnded, StreamTimeout
from gateway.streams.sse import RelayResponse, gather_writes
from shared.config import Settings
from shared.contracts.events import Source, Turn
from shared.errors import DeadlineExceeded, InvalidInput, Unavailable


def _relay(
    gateway: Gateway, user: User, request_id: str, body: ChatBody, resumable: bool
) -> ChatRelay:
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
        resumable=resumable,
    )


def check_options(body: ChatBody | SearchBody, settings: Settings) -> None:
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


@dataclass(frozen=True)
class OpenChat:
    """A published chat request and its replies, holding one of the user's
    stream slots until ``relay_response`` or ``collect`` give it back."""

    relay: ChatRelay
    slot: StreamSlot
    events: AsyncGenerator[RelayEvent, None]


async def open_chat(
    gateway: Gateway,
    user: User,
    request_id: str,
    body: ChatBody,
    history: Sequence[Turn] | None = None,
    *,
    resumable: bool = False,
) -> OpenChat:
    """Take a stream slot and publish the request (with ``history``, the
    conversation so far, when the client keeps it instead of the server).
    ``resumable``: a client may resume it (gateway.streams.resume), and one
    that leaves it gets a grace to do so (gateway.streams.leaving)."""
    relay = _relay(gateway, user, request_id, body, resumable)
    slot = StreamSlot(gateway, user, relay.stream_id)
    await slot.take()
    try:
        events = await relay.start(body.message, body.top_k, body.options(), history)
    except BaseException:
        slot.give_back()
        raise
    return OpenChat(relay, slot, events)


SseRenderer = Callable[[AsyncIterator[RelayEvent]], AsyncGenerator[dict[str, str], None]]


def with_ids(relay: ChatRelay, to_sse: Callable[[RelayEvent], dict[str, str]]) -> SseRenderer:
    """A renderer giving each event its ``id:``, where a client resumes from."""

    async def render(events: AsyncIterator[RelayEvent]) -> AsyncGenerator[dict[str, str], None]:
        async for event in events:
            yield {**to_sse(event), "id": relay.event_id}

    return render


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
        headers={
            "X-Conversation-ID": str(chat.relay.conversation_id),
            **({"X-Stream-ID": chat.relay.stream_id} if chat.relay.resumable else {}),
        },
    )


class StreamSlot:
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
    def __init__(self, *args: Any, slot: StreamSlot, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slot.give_back()


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
    turn: int | None = None
    async for event in events:
        if isinstance(event, AttemptReset):
            words, sources = [], []  # the lost attempt's words are not the answer
            continue
        if isinstance(event, StreamTimeout):
            raise DeadlineExceeded(f"no answer for {event.seconds:g} seconds")
        if isinstance(event, StreamEnded):
            raise Unavailable(event.message)
        if event.type == "token":
            words.append(event.text)
        elif event.type == "sources":
            sources = event.sources
        elif event.type == "done":
            cited, grounded, turn = event.cited, event.grounded, event.turn
        elif event.type == "error":
            raise Unavailable(event.message)
    return ChatAnswer(
        answer="".join(words),
        sources=sources,
        cited=cited,
        grounded=grounded,
        conversation_id=relay.conversation_id,
        turn=turn,
    )
