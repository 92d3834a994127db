"""The limits of ``gateway.http.limits`` as FastAPI dependencies: sign-in
attempts (declared by login and register), and the per-user request rate
(declared on the authenticated routers in ``gateway.app``)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import Depends, Request
from pydantic import TypeAdapter, ValidationError

from gateway.http.deps import REQUEST_COUNTED, CurrentUser, GatewayDep, client_ip
from gateway.models import Username

# The very type the route validates the username with (and so the user
# lookup sees): " alice", "alice " and "alice" are one budget. Usernames are
# case-sensitive (the users table compares them exactly), so "ALICE" is
# another account, with a budget of its own.
_USERNAME: TypeAdapter[str] = TypeAdapter(Username)


async def _username(request: Request) -> str | None:
    """The username the body names, normalised as the route will normalise
    it; None when it names none, or none the route would accept (the route
    then answers 422 without looking anyone up). The body itself is
    validated by the route (and already bounded by gateway.http.middleware)."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    name = body.get("username") if isinstance(body, dict) else None
    if not isinstance(name, str):
        return None
    try:
        return _USERNAME.validate_python(name)
    except ValidationError:
        return None


async def limit_sign_in(request: Request, gateway: GatewayDep) -> None:
    """Counted before the password is hashed, so a flood costs no argon2."""
    if gateway.limits is not None:
        # The socket peer (see docs/configuration.md on proxies).
        ip = client_ip(request) or "unknown"
        await gateway.limits.login_attempt(ip, await _username(request))


SignInLimit = Annotated[None, Depends(limit_sign_in)]


async def limit_requests(request: Request, gateway: GatewayDep, user: CurrentUser) -> None:
    if gateway.limits is not None and not getattr(request.state, REQUEST_COUNTED, False):
        await gateway.limits.request(user.id)
