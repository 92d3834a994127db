"""The one place where exceptions become HTTP responses."""

from __future__ import annotations

import asyncpg
import httpx
import structlog
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.http.middleware import SECURITY_HEADERS
from shared.errors import (
    AuthError,
    Conflict,
    DeadlineExceeded,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RagError,
    TooManyRequests,
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
    (Forbidden, 403),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (TooManyRequests, 429),
    (Unavailable, 503),
    (DeadlineExceeded, 504),
)


# A dependency that is down or overloaded: the client may retry, it is not a bug.
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    RedisConnectionError,
    RedisTimeoutError,
    KafkaError,
    httpx.TransportError,
)


# Seconds a client is told to wait after a 503.
UNAVAILABLE_RETRY_AFTER = "5"


def status_for(exc: RagError) -> int:
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 500)


async def _rag_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RagError)
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    elif status == 503:
        # Unavailable for now (a store refused, the server is draining): as
        # for a dependency that is down, the client may retry.
        headers = {"Retry-After": UNAVAILABLE_RETRY_AFTER}
    if status == 401:
        log.warning(exc.message, path=request.url.path)
    return JSONResponse({"detail": exc.message}, status_code=status, headers=headers)


async def _dependency_down(request: Request, exc: Exception) -> JSONResponse:
    log.error("Dependency unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
    return JSONResponse(
        {"detail": "a service this request needs is unavailable; try again shortly"},
        status_code=503,
        headers={"Retry-After": UNAVAILABLE_RETRY_AFTER},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("Unhandled error", path=request.url.path, exc_info=exc)
    # Starlette sends this from outside every middleware: the headers they
    # would have added are added here.
    headers = dict(SECURITY_HEADERS)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        headers["X-Request-ID"] = request_id
    return JSONResponse({"detail": "Internal server error"}, status_code=500, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RagError, _rag_error)
    for kind in DEPENDENCY_ERRORS:
        app.add_exception_handler(kind, _dependency_down)
    app.add_exception_handler(Exception, _unexpected)
