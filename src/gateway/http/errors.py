"""The one place where exceptions become HTTP responses."""

from __future__ import annotations

import asyncpg
import httpx
import structlog
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from gateway.http.middleware import SECURITY_HEADERS
from gateway.models import ErrorOut
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


def status_of(kind: type[RagError]) -> int:
    """The status an error of this kind is answered with."""
    return next((status for base, status in STATUS if issubclass(kind, base)), 500)


def status_for(exc: RagError) -> int:
    return status_of(type(exc))


def error_json(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorOut(detail=detail).model_dump(), status_code=status, headers=headers)


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
    return error_json(status, exc.message, headers)


async def _dependency_down(request: Request, exc: Exception) -> JSONResponse:
    log.error("Dependency unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
    return error_json(
        503,
        "a service this request needs is unavailable; try again shortly",
        {"Retry-After": UNAVAILABLE_RETRY_AFTER},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("Unhandled error", path=request.url.path, exc_info=exc)
    # Starlette sends this from outside every middleware: the headers they
    # would have added are added here.
    headers = dict(SECURITY_HEADERS)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        headers["X-Request-ID"] = request_id
    return error_json(500, "Internal server error", headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at the request's path. Starlette's
    405 names only the first route with the path; GET and POST of
    ``/api/keys`` are two routes."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and route.methods and regex.match(request.url.path):
            methods |= route.methods
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RagError, _rag_error)
    for kind in DEPENDENCY_ERRORS:
        app.add_exception_handler(kind, _dependency_down)
    app.add_exception_handler(Exception, _unexpected)
