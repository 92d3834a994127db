"""A user's conversations: list them, read one, rename or delete it. One is
continued by passing its id as ``conversation_id`` on chat.

Every query names the caller's tenant and user (``shared.storage.conversations``):
another user's conversation id answers 404 exactly like an unknown one."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import structlog
from fastapi import APIRouter, Depends, Query, Response, status

from gateway.http.deps import CurrentUser, GatewayDep, json_body
from gateway.http.openapi import errors, json_body_schema, link
from gateway.models import (
    ConversationDetail,
    ConversationOut,
    ConversationPage,
    ConversationRename,
    ExchangeOut,
    FeedbackOut,
)
from shared.errors import InvalidInput, NotFound
from shared.storage import conversations
from shared.storage.conversations import Conversation, Exchange

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/conversations", tags=["conversations"])

PAGE_MAX = 100
TURNS_MAX = 1000
_NOT_FOUND = (NotFound, "No such conversation of the caller's")


def _links(pointer: str) -> dict[str, dict[str, object]]:
    """What to do next with the conversation whose id is at ``pointer``."""
    this = {"conversation_id": f"$response.body#{pointer}"}
    return {
        "GetConversation": link("get_conversation", "Read its turns", **this),
        "RenameConversation": link("rename_conversation", "Rename it", **this),
        "DeleteConversation": link("delete_conversation", "Delete it with its turns", **this),
    }


def _out(conversation: Conversation) -> ConversationOut:
    return ConversationOut(
        id=conversation.id,
        title=conversation.title,
        turn_count=conversation.turns,
        created_at=conversation.created_at,
        last_activity_at=conversation.last_active_at,
    )


@router.get(
    "",
    response_model=ConversationPage,
    responses={
        **errors((InvalidInput, "A `cursor` this API did not give")),
        200: {"links": _links("/conversations/0/id")},
    },
)
async def list_conversations(
    gateway: GatewayDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="The `next_cursor` of the page before"),
    ] = None,
) -> ConversationPage:
    """The caller's conversations, the most recently active first."""
    page = await conversations.page_for(
        gateway.clients.pool, user.tenant_id, user.id, limit=limit, cursor=cursor
    )
    return ConversationPage(
        conversations=[_out(c) for c in page.conversations], next_cursor=page.next_cursor
    )


@router.get(
    "/{conversation_id}",
    response_model=ConversationDetail,
    responses={
        **errors(_NOT_FOUND),
        200: {
            "links": {
                **_links("/id"),
                "RateAnswer": link(
                    "rate_answer",
                    "Rate the answer of its first turn shown",
                    conversation_id="$response.body#/id",
                    turn="$response.body#/turns/0/turn",
                ),
            }
        },
    },
)
async def get_conversation(
    gateway: GatewayDep,
    user: CurrentUser,
    conversation_id: UUID,
    limit: Annotated[int, Query(ge=1, le=TURNS_MAX, description="Its last turns")] = 100,
) -> ConversationDetail:
    """The conversation and its turns (each question with its answer)."""
    pool = gateway.clients.pool
    conversation = await conversations.get(pool, user.tenant_id, user.id, conversation_id)
    if conversation is None:
        raise NotFound("conversation not found")
    turns = await conversations.exchanges(
        pool, user.tenant_id, user.id, conversation_id, limit=limit
    )
    return ConversationDetail(**_out(conversation).model_dump(), turns=[_turn(t) for t in turns])


def _turn(exchange: Exchange) -> ExchangeOut:
    rated = exchange.feedback
    return ExchangeOut(
        turn=exchange.turn,
        question=exchange.question,
        answer=exchange.answer,
        sources=exchange.sources,
        created_at=exchange.created_at,
        feedback=FeedbackOut(**vars(rated)) if rated else None,
    )


@router.patch(
    "/{conversation_id}",
    response_model=ConversationOut,
    openapi_extra=json_body_schema(ConversationRename),
    responses={**errors(_NOT_FOUND), 200: {"links": _links("/id")}},
)
async def rename_conversation(
    gateway: GatewayDep,
    user: CurrentUser,
    conversation_id: UUID,
    body: Annotated[ConversationRename, Depends(json_body(ConversationRename))],
) -> ConversationOut:
    """A title of the caller's choosing (it no longer follows the first question)."""
    renamed = await conversations.rename(
        gateway.clients.pool, user.tenant_id, user.id, conversation_id, body.title
    )
    if renamed is None:
        raise NotFound("conversation not found")
    return _out(renamed)


@router.delete(
    "/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(_NOT_FOUND)
)
async def delete_conversation(
    gateway: GatewayDep, user: CurrentUser, conversation_id: UUID
) -> Response:
    """The conversation, its turns and their feedback. Continuing it
    afterwards (its id on chat) starts a new conversation under that id."""
    if not await conversations.delete(
        gateway.clients.pool, user.tenant_id, user.id, conversation_id
    ):
        raise NotFound("conversation not found")
    log.info("Conversation deleted", conversation_id=str(conversation_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
