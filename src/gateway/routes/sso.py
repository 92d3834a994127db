"""The web page's single sign-on: the authorization-code flow with PKCE.

``/login`` sends the browser to the provider with a fresh state, nonce and
PKCE challenge (kept in Redis for ten minutes, the state also in a cookie
of this browser's, so a sign-in started elsewhere cannot be finished here);
``/callback`` checks the state against both, takes them (single use),
trades the code for tokens at the provider, verifies the ID token (and its
nonce), maps it to a user (``gateway.identity.external``) and starts an
ordinary ragstream session. The page gets that session's tokens by a
one-time code in the URL's fragment (never sent to a server, nor logged),
which it trades at ``/exchange`` within a minute. No token is logged."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Annotated
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from pydantic import Field

from gateway.http.deps import GatewayDep, client_ip, counted_check, json_body
from gateway.http.openapi import errors, json_body_schema
from gateway.http.throttle import SignInLimit
from gateway.identity.sso import id_token_of, provider_error, provider_post, session_for, sso_of
from gateway.models import Strict, TokenOut
from gateway.state import Gateway
from shared.errors import AuthError, NotFound, RagError, TooManyRequests, Unavailable

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/auth/oidc", tags=["auth"])
STATE_COOKIE = "rag_oidc_state"
LOGIN_SECONDS = 600
HANDOFF_SECONDS = 60
_NOT_CONFIGURED = (NotFound, "Single sign-on is not configured (OIDC_ISSUER_URL)")


class HandoffBody(Strict):
    code: str = Field(min_length=16, max_length=128)


def _key(gateway: Gateway, kind: str, value: str) -> str:
    digest = hashlib.sha256(value.encode()).hexdigest()
    return f"oidc:{gateway.clients.settings.kafka_topic_prefix}:{kind}:{digest}"


def _redirect_uri(gateway: Gateway, request: Request) -> str:
    configured = gateway.clients.settings.oidc_redirect_url
    return configured or str(request.url_for("oidc_callback"))


@router.get("/login", include_in_schema=False)
async def oidc_login(
    _limited: SignInLimit, gateway: GatewayDep, request: Request
) -> RedirectResponse:
    """Counted as a sign-in attempt of the address: each keeps a little in Redis."""
    sso = sso_of(gateway)
    settings = gateway.clients.settings
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    saved = json.dumps({"nonce": nonce, "verifier": verifier})
    await gateway.clients.redis.set(_key(gateway, "login", state), saved, ex=LOGIN_SECONDS)
    query = {
        "client_id": settings.oidc_client_id,
        "response_type": "code",
        "redirect_uri": _redirect_uri(gateway, request),
        "scope": settings.oidc_scopes,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    authorize = await sso.keys.endpoint("authorization_endpoint")
    response = RedirectResponse(f"{authorize}?{urlencode(query)}", status_code=302)
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=LOGIN_SECONDS,
        path="/api/auth/oidc",
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/callback", include_in_schema=False)
async def oidc_callback(
    gateway: GatewayDep,
    request: Request,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> RedirectResponse:
    """Back from the provider: on to the page, signed in or with a reason."""
    try:
        handoff = await _signed_in(gateway, request, code, state, error)
        target = f"/#sso={handoff}"
    except RagError as exc:
        log.warning("Single sign-on failed", reason=exc.message)
        target = f"/#sso_error={_reason(exc)}"
    response = RedirectResponse(target, status_code=302)
    response.delete_cookie(STATE_COOKIE, path="/api/auth/oidc")
    return response


def _reason(exc: RagError) -> str:
    if isinstance(exc, Unavailable):
        return "unavailable"
    return "expired" if "expired" in exc.message else "refused"


async def _signed_in(
    gateway: Gateway, request: Request, code: str | None, state: str | None, error: str | None
) -> str:
    """The one-time code of a new session for the provider's user."""
    sso = sso_of(gateway)
    if error is not None or not code or not state:
        raise AuthError("the provider refused the sign-in")
    cookie = request.cookies.get(STATE_COOKIE, "")
    if not hmac.compare_digest(cookie.encode(), state.encode()):
        raise AuthError("the sign-in was not started in this browser")
    saved = await gateway.clients.redis.getdel(_key(gateway, "login", state))
    if saved is None:
        raise AuthError("the sign-in expired or was used")
    login = json.loads(saved)
    id_token = await _code_for_id_token(gateway, request, code, login["verifier"])
    claims = await sso.verify(id_token, nonce=login["nonce"])
    tokens = await session_for(gateway, claims, client_ip(request))
    handoff = secrets.token_urlsafe(32)
    key = _key(gateway, "handoff", handoff)
    await gateway.clients.redis.set(key, tokens.model_dump_json(), ex=HANDOFF_SECONDS)
    return handoff


async def _code_for_id_token(gateway: Gateway, request: Request, code: str, verifier: str) -> str:
    client_id = gateway.clients.settings.oidc_client_id
    assert client_id is not None
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": _redirect_uri(gateway, request),
        "code_verifier": verifier,
    }
    response = await provider_post(gateway, "token_endpoint", form, client_id)
    if response.status_code != 200:
        log.warning("Provider refused the code", error=provider_error(response))
        raise AuthError("the provider refused the code")
    return id_token_of(response)


@router.post(
    "/exchange",
    response_model=TokenOut,
    openapi_extra=json_body_schema(HandoffBody),
    responses=errors(
        _NOT_CONFIGURED,
        (AuthError, "The code is unknown, used, or older than a minute"),
        (TooManyRequests, "AUTH_FAILURES_PER_MINUTE from this address"),
        Unavailable,
    ),
)
async def oidc_exchange(
    gateway: GatewayDep,
    request: Request,
    body: Annotated[HandoffBody, Depends(json_body(HandoffBody))],
) -> TokenOut:
    """The tokens of a session the single sign-on started, for the one-time
    code the callback put in the page's address (``#sso=``); once. A wrong
    code counts against the address's AUTH_FAILURES_PER_MINUTE."""
    sso_of(gateway)

    async def taken() -> TokenOut:
        saved = await gateway.clients.redis.getdel(_key(gateway, "handoff", body.code))
        if saved is None:
            raise AuthError("Invalid or used sign-in code")
        return TokenOut.model_validate_json(saved)

    return await counted_check(gateway, client_ip(request), taken)
