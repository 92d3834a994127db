"""Search: the caller's passages for a query, ranked, with no answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from gateway.http.deps import CurrentUser, GatewayDep, RequestId, json_body
from gateway.http.openapi import SIGNED_IN, errors, json_body_schema
from gateway.models import SearchBody, SearchOut
from gateway.streams import search as searching
from shared.errors import DeadlineExceeded, InvalidInput, TooManyRequests, Unavailable

router = APIRouter(prefix="/api/search", tags=["search"])
Body = Annotated[SearchBody, Depends(json_body(SearchBody))]


@router.post(
    "",
    response_model=SearchOut,
    openapi_extra=json_body_schema(SearchBody),
    responses=errors(
        *SIGNED_IN,
        (
            InvalidInput,
            "An option the server cannot do: `hyde` or `reranking: llm` without a generative model",
        ),
        (TooManyRequests, "MAX_CONCURRENT_STREAMS chats and searches of the user's are running"),
        (Unavailable, "The search failed (the worker's error, in `detail`)"),
        (DeadlineExceeded, "No passages within `timeout` (default STREAM_TIMEOUT)"),
    ),
)
async def search(
    gateway: GatewayDep, user: CurrentUser, request_id: RequestId, body: Body
) -> SearchOut:
    """The caller's passages for `query` (their own documents and those shared
    with their tenant), best first, as a chat with the same options would be
    given them, each with the score of every stage that ranked it. Retrieval
    runs on a query worker; no answer is generated and nothing is stored."""
    return await searching.search(gateway, user, request_id, body)
