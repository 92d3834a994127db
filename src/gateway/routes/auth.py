"""Registration, login, token refresh, logout and verification."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request, status

from gateway.http.deps import (
    BearerCredentials,
    CurrentUser,
    GatewayDep,
    client_ip,
    counted_check,
    json_body,
)
from gateway.http.openapi import SIGNED_IN, errors, json_body_schema
from gateway.http.throttle import SignInLimit
from gateway.identity import api_keys, audit, sessions, users
from gateway.identity.security import Claims, TokenPair, TokenType
from gateway.models import Credentials, LogoutBody, RefreshBody, TokenOut, UserOut
from gateway.state import Gateway
from shared.errors import AuthError, Conflict, Forbidden, InvalidInput, TooManyRequests, Unavailable

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/auth", tags=["auth"])
_SIGN_IN_LIMIT = (TooManyRequests, "LOGIN_ATTEMPTS_PER_MINUTE from this address or for this user")
_BAD_TOKEN = (
    AuthError,
    "The token is invalid, expired or revoked (and counted against AUTH_FAILURES_PER_MINUTE)",
)
_FAILED_CHECKS = (TooManyRequests, "AUTH_FAILURES_PER_MINUTE from this address")


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    openapi_extra=json_body_schema(Credentials),
    responses=errors(
        (Forbidden, "Registration is closed (ALLOW_REGISTRATION)"),
        (Conflict, "The username is taken"),
        _SIGN_IN_LIMIT,
        Unavailable,
    ),
)
async def register(
    _limited: SignInLimit,
    gateway: GatewayDep,
    request: Request,
    body: Annotated[Credentials, Depends(json_body(Credentials))],
) -> UserOut:
    """A new user in a new tenant of their own, which they administer.
    Closed unless ALLOW_REGISTRATION: then accounts come from a tenant's
    admins (POST /api/admin/users) or `rag user create`."""
    if not gateway.clients.settings.allow_registration:
        raise Forbidden(
            "registration is closed: ask an administrator of your organisation for an account"
        )
    pool = gateway.clients.pool
    hashed = await gateway.tokens.passwords.hash(body.password)
    user = await users.create(pool, body.username, hashed)
    await audit.record(
        pool,
        tenant_id=user.tenant_id,
        actor_id=user.id,
        action="user.registered",
        target=user.id,
        detail={"username": user.username},
        ip=client_ip(request),
    )
    log.info("User registered", user_id=str(user.id))
    return UserOut(**asdict(user))


def _token_out(pair: TokenPair) -> TokenOut:
    return TokenOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@router.post(
    "/login",
    response_model=TokenOut,
    openapi_extra=json_body_schema(Credentials),
    responses=errors(
        (AuthError, "Wrong username or password, or a disabled account"),
        _SIGN_IN_LIMIT,
        Unavailable,
    ),
)
async def login(
    _limited: SignInLimit,
    gateway: GatewayDep,
    request: Request,
    body: Annotated[Credentials, Depends(json_body(Credentials))],
) -> TokenOut:
    pool = gateway.clients.pool
    found = await users.credentials(pool, body.username)
    user, hashed = found if found else (None, None)
    # Verified even for an unknown user, so timing does not tell them apart.
    valid = await gateway.tokens.passwords.verify(hashed, body.password)
    if user is None:
        raise AuthError("Invalid username or password")
    if not valid or user.disabled_at is not None:
        reason = "disabled" if valid else "password"
        await audit.record(
            pool,
            tenant_id=user.tenant_id,
            actor_id=None,
            action="auth.login_failed",
            target=user.id,
            detail={"reason": reason},
            ip=client_ip(request),
        )
        raise AuthError("Invalid username or password")
    pair = await sessions.start(pool, gateway.tokens, user)
    await audit.record(
        pool,
        tenant_id=user.tenant_id,
        actor_id=user.id,
        action="auth.login",
        target=user.id,
        ip=client_ip(request),
    )
    return _token_out(pair)


@router.post(
    "/refresh",
    response_model=TokenOut,
    openapi_extra=json_body_schema(RefreshBody),
    responses=errors(
        _BAD_TOKEN,
        _FAILED_CHECKS,
        (TooManyRequests, "REQUESTS_PER_MINUTE of the user's"),
        Unavailable,
    ),
)
async def refresh(
    gateway: GatewayDep,
    request: Request,
    body: Annotated[RefreshBody, Depends(json_body(RefreshBody))],
) -> TokenOut:
    """A new pair for a refresh token, which is then used up. Presenting a
    used one revokes its whole session (one of its holders stole it). A
    refused one counts against the address's AUTH_FAILURES_PER_MINUTE."""
    return await counted_check(
        gateway, client_ip(request), lambda: _refresh(gateway, request, body)
    )


async def _refresh(gateway: Gateway, request: Request, body: RefreshBody) -> TokenOut:
    pool = gateway.clients.pool
    claims = gateway.tokens.verify(body.refresh_token, "refresh")
    if gateway.limits is not None:
        # A refresh is the user's request like any other: a client stuck in a
        # refresh loop is throttled, not let through to the database each time.
        await gateway.limits.request(claims.user_id)
    user = await users.get(pool, claims.user_id)
    if user is None or user.tenant_id != claims.tenant_id or user.disabled_at is not None:
        raise AuthError("Invalid token")
    outcome = await sessions.rotate(pool, gateway.tokens, claims)
    if outcome is sessions.Refused.REUSED:
        log.warning("Refresh token reused: session revoked", user_id=str(user.id))
        await audit.record(
            pool,
            tenant_id=user.tenant_id,
            actor_id=user.id,
            action="auth.refresh_reused",
            target=claims.family_id,
            ip=client_ip(request),
        )
    if isinstance(outcome, sessions.Refused):
        raise AuthError("Invalid token")
    return _token_out(outcome)


async def _logout_body(request: Request) -> LogoutBody:
    """The body is optional: without one, the access token says which
    session ends."""
    if not (await request.body()).strip():
        return LogoutBody()
    return await json_body(LogoutBody)(request)


_LOGOUT_BODY = json_body_schema(LogoutBody)
_LOGOUT_BODY["requestBody"]["required"] = False


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    openapi_extra=_LOGOUT_BODY,
    responses=errors(
        (InvalidInput, "Called with an API key and no refresh token: an API key has no session"),
        (AuthError, "No credential, or one that is invalid, expired or revoked"),
        _FAILED_CHECKS,
        Unavailable,
    ),
)
async def logout(
    gateway: GatewayDep,
    request: Request,
    body: Annotated[LogoutBody, Depends(_logout_body)],
    credentials: BearerCredentials,
) -> None:
    """Revoke a session (a refresh-token family): its refresh tokens and
    access tokens stop working at once. Idempotent."""
    expected: TokenType
    if body.refresh_token:
        token, expected = body.refresh_token, "refresh"
    elif credentials is None:
        raise AuthError("Not authenticated")
    elif api_keys.is_api_key(credentials.credentials):
        raise InvalidInput("an API key has no session: revoke it with DELETE /api/keys/{id}")
    else:
        token, expected = credentials.credentials, "access"

    async def verified() -> Claims:
        return gateway.tokens.verify(token, expected)

    claims = await counted_check(gateway, client_ip(request), verified)
    pool = gateway.clients.pool
    await sessions.revoke(pool, claims.family_id, "logout")
    await audit.record(
        pool,
        tenant_id=claims.tenant_id,
        actor_id=claims.user_id,
        action="auth.logout",
        target=claims.family_id,
        ip=client_ip(request),
    )


@router.get("/verify", response_model=UserOut, responses=errors(*SIGNED_IN))
async def verify(user: CurrentUser) -> UserOut:
    return UserOut(**asdict(user))
