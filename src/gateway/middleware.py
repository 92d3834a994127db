"""ASGI middleware around every request.

RequestContext: a request id that is also the correlation id of any event
the request causes, bound to every log line, echoed in a header, and one
access-log line with the outcome and duration. BodyLimits: bounded request
bodies, and no unauthenticated upload read at all. SecurityHeaders: the
headers every response carries."""

from __future__ import annotations

import json
import re
import time
import uuid

import structlog
from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import api_keys
from gateway.api_keys import is_api_key
from gateway.security import Tokens
from shared.config import Settings
from shared.errors import AuthError
from shared.runtime.logging import bind_correlation

log = structlog.get_logger("gateway.access")

REQUEST_ID_HEADER = "x-request-id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
REQUEST_SECONDS = Histogram(
    "rag_http_request_duration_seconds",
    "HTTP request duration (for SSE: until the stream ends)",
    ["method", "route", "status"],
)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER.encode():
            candidate: str = value.decode("latin-1")
            if _VALID_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with bind_correlation(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = getattr(scope.get("route"), "path", "unmatched")
                REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(elapsed)
                # The path only: query strings may carry things that are not ours to log.
                log.info(
                    "Request finished",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 1),
                )


# --- abuse resistance -----------------------------------------------------------

UPLOAD_PATH = "/api/documents"
# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
_PRIVATE_PREFIX = "/api"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Cache-Control": "no-store",
}
_NO_STORE = (b"cache-control", b"no-store")
# Cache-Control only where it is private (below); the rest everywhere.
_SECURITY_HEADERS = tuple(
    (name.lower().encode(), value.encode())
    for name, value in SECURITY_HEADERS.items()
    if name != "Cache-Control"
)


class _BodyTooLarge(Exception):
    """Raised into the app by the bounded ``receive``; the app's reaction is
    discarded and a 413 is sent instead."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope["headers"] if key == name), None)


async def _refuse(send: Send, status: int, detail: str, extra: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    # The body was not read: the server closes the connection after this.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimits:
    """Bounds on request bodies, enforced while they stream in, before any
    route (and FastAPI's multipart spooling) sees them: uploads at
    MAX_UPLOAD_MB plus multipart overhead, everything else at
    MAX_JSON_BODY_KB. An upload without a credible bearer credential (an
    access token whose signature verifies, or something shaped like an API
    key) gets 401 before a byte of its body is read; the full check of the
    credential stays in gateway.deps."""

    def __init__(self, app: ASGIApp, *, tokens: Tokens, settings: Settings) -> None:
        self.app = app
        self._tokens = tokens
        self._upload_limit = settings.max_upload_bytes + MULTIPART_OVERHEAD
        self._json_limit = settings.max_json_body_kb * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH
        if upload and not await self._credible(scope):
            await _refuse(send, 401, "Not authenticated", {"www-authenticate": "Bearer"})
            return
        limit = self._upload_limit if upload else self._json_limit
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _refuse(send, 413, _too_large(limit), {})
            return
        await self._bounded(scope, receive, send, limit)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received, exceeded, started = 0, False, False

        async def bounded_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to a body it could not read
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _refuse(send, 413, _too_large(limit), {})

    async def _credible(self, scope: Scope) -> bool:
        value = (_header(scope, b"authorization") or b"").decode("latin-1")
        scheme, _, credential = value.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return False
        try:
            if is_api_key(credential):
                # One indexed lookup: a made-up key must not buy a read of the body.
                await api_keys.authenticate(scope["app"].state.gateway.clients.pool, credential)
            else:
                self._tokens.verify(credential, "access")
        except AuthError:
            return False
        return True


def _too_large(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"request body is larger than {limit // (1024 * 1024)} MB"
    return f"request body is larger than {limit // 1024} KB"


_CSP = b"content-security-policy"


def _with_security_headers(
    headers: list[tuple[bytes, bytes]], added: tuple[tuple[bytes, bytes], ...]
) -> list[tuple[bytes, bytes]]:
    """``added`` replaces the response's headers of the same names, except a
    Content-Security-Policy the route set itself: that one stands (the web
    page's, stricter; /docs keeps the default, its Swagger UI comes from a CDN)."""
    if any(name.lower() == _CSP for name, _ in headers):
        added = tuple(header for header in added if header[0] != _CSP)
    names = {name for name, _ in added}
    return [(k, v) for k, v in headers if k.lower() not in names] + list(added)


class SecurityHeaders:
    """Headers every response carries; responses to authenticated requests
    (an Authorization header) and everything under /api are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = scope["path"].startswith(_PRIVATE_PREFIX) or any(
            name == b"authorization" for name, _ in scope["headers"]
        )
        added = _SECURITY_HEADERS + ((_NO_STORE,) if private else ())

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = _with_security_headers(list(message.get("headers", [])), added)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
