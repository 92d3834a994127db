"""The limits of ``gateway.limits`` as FastAPI dependencies: sign-in
attempts (declared by login and register), and the per-user request rate
(declared on the authenticated routers in ``gateway.app``)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import Depends, Request

from gateway.deps import CurrentUser, GatewayDep, client_ip

MAX_USERNAME_KEY = 256


async def _username(request: Request) -> str | None:
    """The username the body names, if it names one; the body itself is
    validated by the route (and already bounded by gateway.middleware)."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    name = body.get("username") if isinstance(body, dict) else None
    return name[:MAX_USERNAME_KEY] if isinstance(name, str) and name else None


async def limit_sign_in(request: Request, gateway: GatewayDep) -> None:
    """Counted before the password is hashed, so a flood costs no argon2."""
    if gateway.limits is not None:
        # The socket peer (see docs/configuration.md on proxies).
        ip = client_ip(request) or "unknown"
        await gateway.limits.login_attempt(ip, await _username(request))


SignInLimit = Annotated[None, Depends(limit_sign_in)]


async def limit_requests(gateway: GatewayDep, user: CurrentUser) -> None:
    if gateway.limits is not None:
        await gateway.limits.request(user.id)
