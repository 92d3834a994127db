"""Chat: streamed (SSE) and whole answers, and the history of conversations."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from gateway.http.deps import CurrentUser, GatewayDep, RequestId, json_body, json_body_schema
from gateway.models import ChatAnswer, ChatBody, TurnOut
from gateway.streams.chat_stream import collect, open_chat, relay_response
from gateway.streams.inbox import AttemptReset
from gateway.streams.relay import RelayEvent, StreamEnded, StreamTimeout
from gateway.streams.sse import RelayResponse
from shared.storage import chat_history

router = APIRouter(prefix="/api/chat", tags=["chat"])
Body = Annotated[ChatBody, Depends(json_body(ChatBody))]
RESET_MESSAGE = "the answer was interrupted and starts again: discard what was shown of it"
SSE_EVENTS = (
    "SSE events: `sources` (the numbered passages), `token` (`text`, `seq`), then exactly"
    " one of `done` (`conversation_id`, `cited`, `grounded`), `error` (`message`, and"
    " `reason` when the gateway ended it) or `timeout` (`stream_timeout`). `reset`"
    " (`attempt`, `message`): the worker writing the answer died and another answers"
    " again; discard what was shown, the whole new answer follows."
)


def to_sse(event: RelayEvent) -> dict[str, str]:
    """An event as SSE: ``event:`` is its type, ``data:`` its JSON payload."""
    data: Any
    match event:
        case StreamTimeout(seconds=seconds):
            data = {"message": f"no answer for {seconds:g} seconds", "stream_timeout": seconds}
        case StreamEnded(reason=reason):
            data = {"message": event.message, "reason": reason}
        case AttemptReset(attempt=attempt):
            data = {"attempt": attempt, "message": RESET_MESSAGE}
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
    responses={200: {"content": {"text/event-stream": {}}, "description": SSE_EVENTS}},
)
async def chat_stream(
    gateway: GatewayDep, user: CurrentUser, request_id: RequestId, body: Body
) -> RelayResponse:
    chat = await open_chat(gateway, user, request_id, body)
    return relay_response(gateway, chat, _as_sse)


async def _as_sse(events: AsyncIterator[RelayEvent]) -> AsyncGenerator[dict[str, str], None]:
    async for event in events:
        yield to_sse(event)


@router.post("", response_model=ChatAnswer, openapi_extra=json_body_schema(ChatBody))
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
