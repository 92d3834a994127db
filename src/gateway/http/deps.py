"""FastAPI dependencies, as ``Annotated`` aliases the routes declare."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar
from uuid import UUID

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from gateway.identity import api_keys, external, sessions, users
from gateway.identity.users import User
from gateway.state import Gateway
from shared.errors import AuthError, Forbidden

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

_bearer = HTTPBearer(
    auto_error=False, description="An access token from /api/auth/login, or an API key (rsk_…)"
)


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def get_request_id(request: Request) -> str:
    request_id: str = request.state.request_id
    return request_id


RequestId = Annotated[str, Depends(get_request_id)]
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def client_ip(request: Request) -> str | None:
    """The peer's address, for the audit log (behind a proxy, the proxy's
    unless uvicorn runs with --proxy-headers)."""
    return request.client.host if request.client else None


@dataclass(frozen=True)
class Principal:
    """Who is calling, and with what: ``family_id`` is the login session of
    an access token, None for an API key."""

    user: User
    family_id: UUID | None


async def current_principal(
    request: Request, gateway: GatewayDep, credentials: BearerCredentials
) -> Principal:
    if credentials is None:
        raise AuthError("Not authenticated")
    credential, ip = credentials.credentials, client_ip(request)
    return await counted_check(gateway, ip, lambda: authenticate(gateway, credential, ip))


async def counted_check(gateway: Gateway, ip: str | None, check: Callable[[], Awaitable[T]]) -> T:
    """``check()``, the check of a credential a request presents, under the
    per-address limit on failed ones (AUTH_FAILURES_PER_MINUTE,
    ``Limits.authenticating``): 429 before it runs once the address is over."""
    if gateway.limits is None:
        return await check()
    return await gateway.limits.authenticating(ip or "unknown", check)


async def authenticate(gateway: Gateway, credential: str, ip: str | None = None) -> Principal:
    """Who a bearer credential (access token, API key, or a token of the
    OpenID provider's) names, or AuthError: the check of every request, also
    re-run by a long-lived stream (``gateway.routes.document_events``) to
    end it once it fails. ``ip``: for the audit of a first sign-on."""
    pool = gateway.clients.pool
    if api_keys.is_api_key(credential):
        return Principal(await api_keys.authenticate(pool, credential), None)
    if gateway.oidc is not None and gateway.oidc.claims_to_be_ours(credential):
        external_claims = await gateway.oidc.verify(credential)
        admin_group = gateway.clients.settings.oidc_admin_group
        # No family: like an API key's, the provider's session is the provider's.
        signed_on = await external.user_for(pool, external_claims, admin_group, ip)
        return Principal(signed_on, None)
    claims = gateway.tokens.verify(credential, "access")
    user = await users.get(pool, claims.user_id)
    # Read on every request, so disabling a user takes effect at once.
    if user is None or user.tenant_id != claims.tenant_id or user.disabled_at is not None:
        raise AuthError("Invalid token")
    # Likewise logout and refresh-token reuse: they revoke the family.
    await sessions.check_active(pool, claims.family_id, user.id)
    return Principal(user, claims.family_id)


# Set in the request's state when its request was counted before its body
# was read (an upload, gateway.http.middleware.BodyLimits), so it is counted once.
REQUEST_COUNTED = "request_counted"

CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def current_user(principal: CurrentPrincipal) -> User:
    return principal.user


CurrentUser = Annotated[User, Depends(current_user)]


async def current_admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("this needs an administrator of your organisation")
    return user


# The tenant's administrators only (403 for anyone else, whatever the id).
Admin = Annotated[User, Depends(current_admin)]


def json_body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """Parse the body as JSON whatever its Content-Type says, so that
    ``curl -d '{...}'`` (form-encoded by default) works as the runbook shows."""

    async def parse(request: Request) -> M:
        try:
            return model.model_validate_json(await request.body())
        except ValidationError as exc:
            # Never echo the input back: it may hold a password.
            errors = exc.errors(include_input=False, include_url=False)
            for error in errors:
                error["loc"] = ("body", *error["loc"])
            raise RequestValidationError(errors) from None

    return parse
