"""ASGI middleware around every request.

RequestContext: a request id that is also the correlation id of any event
the request causes, bound to every log line, echoed in a header, and one
access-log line with the outcome and duration (``Request finished``, INFO;
on a terminal, a quick successful read's is DEBUG, so a polling client does
not scroll the rest away). BodyLimits: bounded request bodies, and no
unauthenticated upload read at all. SecurityHeaders: the headers every
response carries."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from uuid import UUID

import structlog
from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.deps import REQUEST_COUNTED, authenticate, counted_check
from gateway.http.upload_gate import SpoolFull, UploadGate
from gateway.identity.security import Tokens
from gateway.models import ErrorOut
from shared.config import Settings
from shared.errors import AuthError, TooManyRequests, Unavailable
from shared.runtime.logging import QUIET_ON_TERMINAL, bind_correlation

log = structlog.get_logger("gateway.access")

REQUEST_ID_HEADER = "x-request-id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
# A read slower than this is worth a line on a terminal too.
SLOW_READ_SECONDS = 1.0
_READS = frozenset({"GET", "HEAD"})
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
                    **_quiet_if_routine(scope["method"], status, elapsed),
                )


def _quiet_if_routine(method: str, status: int, seconds: float) -> dict[str, bool]:
    """A successful, quick read (a client polling a document, a health check)
    is DEBUG on a terminal; writes, errors (auth failures among them) and slow
    requests stay INFO there. JSON logs keep every request at INFO."""
    routine = method in _READS and 200 <= status < 400 and seconds < SLOW_READ_SECONDS
    return {QUIET_ON_TERMINAL: True} if routine else {}


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


_DRAIN_BYTES = 64 * 1024
_DRAIN_SECONDS = 0.5


class _BodyTooLarge(Exception):
    """Raised into the app by the bounded ``receive``; the app's reaction is
    discarded and a 413 is sent instead."""


class _SpoolFull(Exception):
    """As ``_BodyTooLarge``, for an upload past the process's spool budget
    (one without a Content-Length, found out as it streams): a 503."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope["headers"] if key == name), None)


async def _refuse(send: Send, status: int, detail: str, extra: dict[str, str]) -> None:
    body = ErrorOut(detail=detail).model_dump_json().encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    # The body was not read (all of it): the server closes the connection after this.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse_unread(
    receive: Receive, send: Send, status: int, detail: str, extra: dict[str, str]
) -> None:
    """Refuse a request whose body was not read. What it has already sent is
    read first, up to a little: the server closes the connection as soon as
    the refusal is sent, a socket closed with unread data is reset, and the
    client may lose the refusal with it. A large or trickling body is cut
    after that little."""
    await _drain(receive)
    await _refuse(send, status, detail, extra)


async def _drain(receive: Receive) -> None:
    budget = _DRAIN_BYTES
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            while budget > 0:
                message = await receive()
                if message["type"] != "http.request":
                    return
                budget -= len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        return


class BodyLimits:
    """Bounds on request bodies, enforced while they stream in, before any
    route (and FastAPI's multipart spooling) sees them: uploads at
    MAX_UPLOAD_MB plus multipart overhead, everything else at
    MAX_JSON_BODY_KB.

    Before a byte of an upload's body is read: its credential gets the full
    check every request gets (``gateway.http.deps.authenticate``: a revoked
    session, a disabled user or a made-up key is a 401, counted against the
    address, 429 past AUTH_FAILURES_PER_MINUTE), the user's request rate
    (REQUESTS_PER_MINUTE) is counted, the user takes one of
    MAX_CONCURRENT_UPLOADS slots (429), and the body's size is reserved in
    the process's UPLOAD_SPOOL_MB (503 with Retry-After when full)."""

    def __init__(self, app: ASGIApp, *, tokens: Tokens, settings: Settings) -> None:
        self.app = app
        self._tokens = tokens
        self._upload_limit = settings.max_upload_bytes + MULTIPART_OVERHEAD
        self._json_limit = settings.max_json_body_kb * 1024
        self._gate = UploadGate(
            max_per_user=settings.max_concurrent_uploads,
            spool_bytes=settings.upload_spool_mb * 1024 * 1024,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH
        limit = self._upload_limit if upload else self._json_limit
        length = _header(scope, b"content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        if not upload:
            if declared is not None and declared > limit:
                await _refuse_unread(receive, send, 413, _too_large(limit), {})
                return
            await self._bounded(scope, receive, send, limit)
            return
        try:
            user_id = await self._admitted(scope)
        except TooManyRequests as exc:
            await _refuse_unread(
                receive, send, 429, str(exc), {"retry-after": str(exc.retry_after)}
            )
            return
        except Unavailable as exc:  # the OpenID provider, its keys never read
            await _refuse_unread(receive, send, 503, exc.message, {"retry-after": "5"})
            return
        if user_id is None:
            await _refuse_unread(
                receive, send, 401, "Not authenticated", {"www-authenticate": "Bearer"}
            )
            return
        if declared is not None and declared > limit:
            await _refuse_unread(receive, send, 413, _too_large(limit), {})
            return
        await self._upload(scope, receive, send, user_id, declared or 0, limit)

    async def _upload(
        self, scope: Scope, receive: Receive, send: Send, user_id: UUID, declared: int, limit: int
    ) -> None:
        """The upload within the user's slots and the process's spool."""
        try:
            self._gate.enter(user_id)
        except TooManyRequests as exc:
            await _refuse_unread(
                receive, send, 429, str(exc), {"retry-after": str(exc.retry_after)}
            )
            return
        try:
            try:
                self._gate.reserve(declared)
            except SpoolFull as exc:
                await _refuse_unread(
                    receive, send, 503, exc.message, {"retry-after": str(exc.retry_after)}
                )
                return
            reserved = [declared]
            try:
                await self._bounded(scope, receive, send, limit, reserved)
            finally:
                self._gate.release(reserved[0])
        finally:
            self._gate.leave(user_id)

    async def _bounded(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        limit: int,
        reserved: list[int] | None = None,
    ) -> None:
        """The app with a body bounded at ``limit``; for an upload, each byte
        past its ``reserved`` size is reserved in the spool as it arrives."""
        received, started = 0, False
        refusal: tuple[int, str, dict[str, str]] | None = None

        async def bounded_receive() -> Message:
            nonlocal received, refusal
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refusal = (413, _too_large(limit), {})
                    raise _BodyTooLarge
                if reserved is not None and received > reserved[0]:
                    try:
                        self._gate.reserve(received - reserved[0])
                    except SpoolFull as exc:
                        refusal = (503, exc.message, {"retry-after": str(exc.retry_after)})
                        raise _SpoolFull from None
                    reserved[0] = received
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal:
                return  # the app's answer to a body it could not read
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except Exception:
            if not refusal:
                raise
        if refusal and not started:
            await _refuse_unread(receive, send, *refusal)

    async def _admitted(self, scope: Scope) -> UUID | None:
        """The uploading user, after the full check of the credential and
        the count of the user's requests; None without a valid credential."""
        value = (_header(scope, b"authorization") or b"").decode("latin-1")
        scheme, _, credential = value.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return None
        gateway = scope["app"].state.gateway
        client = scope.get("client")
        ip = client[0] if client else None
        try:
            # Counted like gateway.http.deps' check, against the same address.
            principal = await counted_check(
                gateway, ip, lambda: authenticate(gateway, credential, ip)
            )
        except AuthError:
            return None
        if gateway.limits is not None:
            await gateway.limits.request(principal.user.id)
            # Counted here, before the body: the route's own count skips it.
            scope.setdefault("state", {})[REQUEST_COUNTED] = True
        return principal.user.id


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
