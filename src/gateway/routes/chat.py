"""Chat: streamed (SSE) and whole answers, and the history of conversations."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from gateway.http.deps import CurrentUser, GatewayDep, RequestId, json_body
from gateway.http.openapi import SIGNED_IN, errors, event_stream, json_body_schema, link
from gateway.models import (
    ChatAnswer,
    ChatBody,
    DoneEvent,
    ErrorEvent,
    ResetEvent,
    TimeoutEvent,
    TokenEvent,
    TurnOut,
)
from gateway.streams.chat_stream import collect, open_chat, relay_response, with_ids
from gateway.streams.inbox import AttemptReset
from gateway.streams.relay import RelayEvent, StreamEnded, StreamTimeout
from gateway.streams.sse import RelayResponse
from shared.contracts.events import Source
from shared.errors import DeadlineExceeded, InvalidInput, TooManyRequests, Unavailable
from shared.storage import chat_history

router = APIRouter(prefix="/api/chat", tags=["chat"])
Body = Annotated[ChatBody, Depends(json_body(ChatBody))]
RESET_MESSAGE = "the answer was interrupted and starts again: discard what was shown of it"
SSE_EVENTS = (
    "SSE events: `sources` (the numbered passages), `token` (`text`, `seq`), then exactly"
    " one of `done` (`conversation_id`, `cited`, `grounded`), `error` (`message`, and"
    " `reason` when the gateway ended it) or `timeout` (`stream_timeout`). `reset`"
    " (`attempt`, `message`): the worker writing the answer died and another answers"
    " again; discard what was shown, the whole new answer follows. Each event's `id` is"
    " where to resume from: see `GET /api/chat/stream/{stream_id}`."
)


_OPEN_ERRORS = (
    *SIGNED_IN,
    (
        InvalidInput,
        "An option the server cannot do: `hyde` or `reranking: llm` without a generative model",
    ),
    (TooManyRequests, "MAX_CONCURRENT_STREAMS chats of the user's are running"),
)
# The conversation a chat was filed under, to read back.
_HISTORY = {
    "History": link(
        "history", "The conversation so far", conversation_id="$response.body#/conversation_id"
    ),
    "Conversation": link(
        "get_conversation",
        "The conversation, turn by turn",
        conversation_id="$response.body#/conversation_id",
    ),
    "RateAnswer": link(
        "rate_answer",
        "Rate the answer",
        conversation_id="$response.body#/conversation_id",
        turn="$response.body#/turn",
    ),
}


# What each event's data is: the stream's description in /openapi.json.
SSE_DATA: dict[str, Any] = {
    "sources": list[Source],
    "token": TokenEvent,
    "done": DoneEvent,
    "error": ErrorEvent,
    "timeout": TimeoutEvent,
    "reset": ResetEvent,
}


def to_sse(event: RelayEvent) -> dict[str, str]:
    """An event as SSE: ``event:`` is its type, ``data:`` its JSON payload
    (a model of SSE_DATA; fields a kind of event does not have left out)."""
    data: BaseModel | list[Source]
    match event:
        case StreamTimeout(seconds=seconds):
            data = TimeoutEvent(
                message=f"no answer for {seconds:g} seconds", stream_timeout=seconds
            )
        case StreamEnded(reason=reason):
            data = ErrorEvent(message=event.message, reason=reason)
        case AttemptReset(attempt=attempt):
            data = ResetEvent(attempt=attempt, message=RESET_MESSAGE)
        case _ if event.type == "token":
            data = TokenEvent(text=event.text, seq=event.seq)
        case _ if event.type == "sources":
            data = event.sources
        case _ if event.type == "error":
            data = ErrorEvent(message=event.message, seq=event.seq)
        case _:
            data = DoneEvent(
                conversation_id=event.conversation_id,
                seq=event.seq,
                cited=event.cited,
                grounded=event.grounded,
                **({"turn": event.turn} if event.turn is not None else {}),
            )
    return {"event": event.type, "data": json.dumps(_jsonable(data))}


def _jsonable(data: BaseModel | list[Source]) -> Any:
    if isinstance(data, list):
        return [source.model_dump(mode="json") for source in data]
    return data.model_dump(mode="json", exclude_unset=True)


@router.post(
    "/stream",
    response_class=RelayResponse,
    openapi_extra=json_body_schema(ChatBody),
    responses={
        **errors(*_OPEN_ERRORS),
        200: {
            **event_stream(SSE_EVENTS, **SSE_DATA),
            "headers": {
                "X-Conversation-ID": {
                    "description": "The conversation the exchange is filed under",
                    "schema": {"type": "string", "format": "uuid"},
                },
                "X-Stream-ID": {
                    "description": "The stream's id, to resume it after a dropped connection",
                    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                },
            },
            "links": {
                "History": link(
                    "history",
                    "The conversation so far",
                    conversation_id="$response.header.X-Conversation-ID",
                ),
                "Resume": link(
                    "resume_stream",
                    "The rest of the stream, after a dropped connection (with Last-Event-ID)",
                    stream_id="$response.header.X-Stream-ID",
                ),
                "Conversation": link(
                    "get_conversation",
                    "The conversation, turn by turn",
                    conversation_id="$response.header.X-Conversation-ID",
                ),
            },
        },
    },
)
async def chat_stream(
    gateway: GatewayDep, user: CurrentUser, request_id: RequestId, body: Body
) -> RelayResponse:
    chat = await open_chat(gateway, user, request_id, body, resumable=True)
    return relay_response(gateway, chat, with_ids(chat.relay, to_sse))


@router.post(
    "",
    response_model=ChatAnswer,
    openapi_extra=json_body_schema(ChatBody),
    responses={
        **errors(
            *_OPEN_ERRORS,
            (Unavailable, "The answer failed (the worker's error, in `detail`)"),
            (DeadlineExceeded, "No answer within `stream_timeout` (default STREAM_TIMEOUT)"),
        ),
        200: {"links": _HISTORY},
    },
)
async def chat(
    gateway: GatewayDep, user: CurrentUser, request_id: RequestId, body: Body
) -> ChatAnswer:
    return await collect(await open_chat(gateway, user, request_id, body))


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
