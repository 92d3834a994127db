"""``GET /asyncapi``: the AsyncAPI document of the Kafka topics, for internal
services that skip HTTP. The same document as ``schemas/asyncapi.json``
(shared.contracts.schemas), built once per process; public, like ``/docs``."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from shared.contracts.schemas import asyncapi

router = APIRouter(tags=["operations"])


@cache
def _document() -> dict[str, Any]:
    return asyncapi()


@router.get(
    "/asyncapi",
    response_class=JSONResponse,
    summary="AsyncAPI 3.0 document of the Kafka topics and their messages",
)
async def asyncapi_document() -> JSONResponse:
    return JSONResponse(_document())
