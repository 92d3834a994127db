"""Feedback on answers: a user rates the answer of one of their turns (up or
down, a comment, the source that was wrong). Stored with the turn, one per
turn (a new rating replaces it), published on ``rag.feedback`` for other
services, counted in ``rag_feedback_total``. The tenant's admins list and
export it (``gateway.routes.admin``)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import structlog
from fastapi import APIRouter, Depends, Path
from prometheus_client import Counter

from gateway.http.deps import CurrentUser, GatewayDep, RequestId, json_body
from gateway.http.openapi import errors, json_body_schema
from gateway.models import FeedbackBody, FeedbackOut
from shared.contracts.events import FeedbackGiven, SourceRef
from shared.errors import InvalidInput, NotFound
from shared.runtime.kafka import publish
from shared.storage import feedback
from shared.storage.feedback import Feedback

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/conversations", tags=["feedback"])

FEEDBACK_GIVEN = Counter(
    "rag_feedback_total",
    "Ratings of answers given (a rating that replaces an earlier one counted again)",
    ["rating"],
)
# chat_history.turn is an integer.
Turn = Annotated[int, Path(ge=1, le=2**31 - 1, description="The turn's number, from 1")]
_NO_TURN = (NotFound, "No such answered turn in a conversation of the caller's")


def _out(given: Feedback) -> FeedbackOut:
    return FeedbackOut(
        rating=given.rating,
        comment=given.comment,
        wrong_source=given.wrong_source,
        created_at=given.created_at,
        updated_at=given.updated_at,
    )


@router.put(
    "/{conversation_id}/turns/{turn}/feedback",
    response_model=FeedbackOut,
    openapi_extra=json_body_schema(FeedbackBody),
    responses=errors(
        _NO_TURN, (InvalidInput, "`wrong_source` is not the number of a source of the answer")
    ),
)
async def rate_answer(
    gateway: GatewayDep,
    user: CurrentUser,
    request_id: RequestId,
    conversation_id: UUID,
    turn: Turn,
    body: Annotated[FeedbackBody, Depends(json_body(FeedbackBody))],
) -> FeedbackOut:
    """Rate the turn's answer; a rating given before is replaced. The
    rating, with the turn's question and answer, is readable by the
    tenant's admins."""
    clients = gateway.clients
    rated = await feedback.rate(
        clients.pool,
        user.tenant_id,
        user.id,
        conversation_id,
        turn,
        rating=body.rating,
        comment=body.comment or None,
        wrong_source=body.wrong_source,
    )
    if rated is None:
        raise NotFound("no such answered turn")
    event = FeedbackGiven(
        correlation_id=request_id,
        tenant_id=user.tenant_id,
        user_id=user.id,
        conversation_id=conversation_id,
        turn=turn,
        rating=rated.feedback.rating,
        comment=rated.feedback.comment,
        wrong_source=rated.feedback.wrong_source,
        question=rated.question,
        answer=rated.answer,
        sources=[SourceRef.model_validate(s) for s in rated.sources],
        replaced=rated.replaced,
    )
    # Stored first: should Kafka refuse, the 503 asks for the same PUT
    # again, which replaces the rating with itself and publishes it.
    await publish(clients.broker, clients.topics.feedback, event, key=conversation_id)
    FEEDBACK_GIVEN.labels(body.rating).inc()
    log.info("Feedback given", rating=body.rating, turn=turn, replaced=rated.replaced)
    return _out(rated.feedback)


@router.get(
    "/{conversation_id}/turns/{turn}/feedback",
    response_model=FeedbackOut,
    responses=errors((NotFound, "No rating of this turn by the caller")),
)
async def get_feedback(
    gateway: GatewayDep, user: CurrentUser, conversation_id: UUID, turn: Turn
) -> FeedbackOut:
    given = await feedback.get(gateway.clients.pool, user.tenant_id, user.id, conversation_id, turn)
    if given is None:
        raise NotFound("no feedback on this turn")
    return _out(given)
