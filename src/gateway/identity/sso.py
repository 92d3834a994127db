"""The gateway's side of a sign-on at the OpenID provider, for the routes
of ``gateway.routes.sso`` (web) and ``gateway.routes.sso_device`` (CLI):
calls to the provider's endpoints as ragstream's client, and the ordinary
ragstream session a verified sign-on starts. Tokens are never logged."""

from __future__ import annotations

import httpx

from gateway.identity import audit, external, sessions
from gateway.identity.oidc import ExternalClaims, OidcVerifier
from gateway.models import TokenOut
from gateway.state import Gateway
from shared.errors import AuthError, NotFound, Unavailable


def sso_of(gateway: Gateway) -> OidcVerifier:
    if gateway.oidc is None:
        raise NotFound("single sign-on is not configured")
    return gateway.oidc


async def provider_post(
    gateway: Gateway, endpoint: str, form: dict[str, str], client_id: str
) -> httpx.Response:
    """A form POST to one of the provider's endpoints (by its discovery
    name) as ``client_id``: with the client secret when it is
    OIDC_CLIENT_ID's (confidential), naming itself only otherwise (public)."""
    sso, settings, http = sso_of(gateway), gateway.clients.settings, gateway.clients.oidc_http
    assert http is not None
    secret = settings.oidc_client_secret if client_id == settings.oidc_client_id else None
    form = {**form, "client_id": client_id}
    try:
        url = await sso.keys.endpoint(endpoint)
        if secret is None:
            return await http.post(url, data=form)
        auth = httpx.BasicAuth(client_id, secret.get_secret_value())
        return await http.post(url, data=form, auth=auth)
    except httpx.HTTPError:
        raise Unavailable("the sign-in provider cannot be reached") from None


def id_token_of(response: httpx.Response) -> str:
    """The ID token of the token endpoint's answer; AuthError without one."""
    try:
        id_token = response.json().get("id_token")
    except (ValueError, AttributeError):
        id_token = None
    if not isinstance(id_token, str):
        raise AuthError("the provider returned no ID token")
    return id_token


def provider_error(response: httpx.Response) -> str:
    """The OAuth ``error`` code of a refusal (never its description, which
    may echo the request)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return f"http_{response.status_code}"
    return error if isinstance(error, str) else f"http_{response.status_code}"


async def session_for(gateway: Gateway, claims: ExternalClaims, ip: str | None) -> TokenOut:
    """A ragstream session for the provider's user (created at the first
    sign-in), as after a password sign-in; audited as a login."""
    pool = gateway.clients.pool
    admin_group = gateway.clients.settings.oidc_admin_group
    user = await external.user_for(pool, claims, admin_group, ip)
    pair = await sessions.start(pool, gateway.tokens, user)
    await audit.record(
        pool,
        tenant_id=user.tenant_id,
        actor_id=user.id,
        action="auth.login",
        target=user.id,
        detail={"method": "sso"},
        ip=ip,
    )
    return TokenOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )
