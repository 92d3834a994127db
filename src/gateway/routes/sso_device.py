"""``rag login --sso``: the device-code flow (RFC 8628), through the gateway.

The CLI asks the gateway to start a device authorization at the provider
(as OIDC_DEVICE_CLIENT_ID), shows the user the code and the address to
enter it at, and polls the gateway, which polls the provider's token
endpoint once per call. Once the user has approved, the ID token is
verified and the CLI gets an ordinary ragstream session, so refresh and
logout work as after a password login. The device code is the CLI's
secret with the gateway; the gateway keeps nothing of it."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from gateway.http.deps import GatewayDep, client_ip, counted_check, json_body
from gateway.http.openapi import errors, json_body_schema
from gateway.http.throttle import SignInLimit
from gateway.identity.sso import id_token_of, provider_error, provider_post, session_for, sso_of
from gateway.models import Strict, TokenOut
from gateway.state import Gateway
from shared.errors import AuthError, Conflict, NotFound, TooManyRequests, Unavailable

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/auth/oidc/device", tags=["auth"])
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_NOT_CONFIGURED = (NotFound, "Single sign-on is not configured, or the provider has no device flow")


class DeviceStartOut(BaseModel):
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None = None
    expires_in: int
    interval: int = 5


class DeviceTokenBody(Strict):
    device_code: str = Field(min_length=1, max_length=4096)


def _client_id(gateway: Gateway) -> str:
    settings = gateway.clients.settings
    client_id = settings.oidc_device_client_id or settings.oidc_client_id
    assert client_id is not None
    return client_id


@router.post(
    "",
    response_model=DeviceStartOut,
    responses=errors(
        _NOT_CONFIGURED,
        (TooManyRequests, "LOGIN_ATTEMPTS_PER_MINUTE from this address"),
        Unavailable,
    ),
)
async def start_device_sign_in(_limited: SignInLimit, gateway: GatewayDep) -> DeviceStartOut:
    """A device code and the code the user enters at the provider (counted
    as a sign-in attempt of the address)."""
    sso_of(gateway)
    form = {"scope": gateway.clients.settings.oidc_scopes}
    try:
        response = await provider_post(
            gateway, "device_authorization_endpoint", form, _client_id(gateway)
        )
    except Unavailable as exc:
        if "offers no" in exc.message:
            raise NotFound("the sign-in provider has no device flow") from None
        raise
    if response.status_code != 200:
        log.warning("Provider refused a device sign-in", error=provider_error(response))
        raise Unavailable("the sign-in provider refused to start a device sign-in")
    try:
        return DeviceStartOut.model_validate_json(response.content)
    except ValueError:
        raise Unavailable("the sign-in provider's answer is not a device authorization") from None


@router.post(
    "/token",
    response_model=TokenOut,
    openapi_extra=json_body_schema(DeviceTokenBody),
    responses=errors(
        _NOT_CONFIGURED,
        (Conflict, "Not approved yet: ask again after the interval"),
        (TooManyRequests, "Asked too often (slow down), or AUTH_FAILURES_PER_MINUTE"),
        (AuthError, "Refused at the provider, expired, or the user is not allowed"),
        Unavailable,
    ),
)
async def device_token(
    gateway: GatewayDep,
    request: Request,
    body: Annotated[DeviceTokenBody, Depends(json_body(DeviceTokenBody))],
) -> TokenOut:
    """One poll: the session's tokens once the user approved at the provider.
    A refusal counts against the address's AUTH_FAILURES_PER_MINUTE."""
    sso_of(gateway)
    return await counted_check(
        gateway, client_ip(request), lambda: _polled(gateway, request, body.device_code)
    )


async def _polled(gateway: Gateway, request: Request, device_code: str) -> TokenOut:
    sso = sso_of(gateway)
    form = {"grant_type": DEVICE_GRANT, "device_code": device_code}
    response = await provider_post(gateway, "token_endpoint", form, _client_id(gateway))
    if response.status_code != 200:
        error = provider_error(response)
        if error == "authorization_pending":
            raise Conflict("authorization_pending: the user has not approved yet")
        if error == "slow_down":
            raise TooManyRequests("slow_down: poll less often", retry_after=10)
        log.info("Device sign-in refused", error=error)
        raise AuthError(f"the sign-in was refused ({error})")
    claims = await sso.verify(id_token_of(response))
    return await session_for(gateway, claims, client_ip(request))
