"""The one place where exceptions become HTTP responses."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.errors import (
    AuthError,
    Conflict,
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RagError,
    Unavailable,
    UnsupportedDocument,
)

log = structlog.get_logger(__name__)

# Most specific first: the first matching class decides.
STATUS: tuple[tuple[type[RagError], int], ...] = (
    (UnsupportedDocument, 415),
    (InvalidInput, 400),
    (NotFound, 404),
    (AuthError, 401),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (Unavailable, 503),
    (DeadlineExceeded, 504),
)


def status_for(exc: RagError) -> int:
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 500)


async def _rag_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RagError)
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 401:
        log.warning(exc.message, path=request.url.path)
    return JSONResponse({"detail": exc.message}, status_code=status, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("Unhandled error", path=request.url.path, exc_info=exc)
    return JSONResponse({"detail": "Internal server error"}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RagError, _rag_error)
    app.add_exception_handler(Exception, _unexpected)
