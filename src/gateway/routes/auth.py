"""Registration, login, token refresh and verification."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, status

from gateway import users
from gateway.deps import CurrentUser, GatewayDep, json_body, json_body_schema
from gateway.models import Credentials, RefreshBody, TokenOut, UserOut
from gateway.security import hash_password, verify_password
from shared.errors import AuthError

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    openapi_extra=json_body_schema(Credentials),
)
async def register(
    gateway: GatewayDep, body: Annotated[Credentials, Depends(json_body(Credentials))]
) -> UserOut:
    user = await users.create(
        gateway.clients.pool, body.username, await hash_password(body.password)
    )
    log.info("User registered", user_id=str(user.id))
    return UserOut(**asdict(user))


@router.post("/login", response_model=TokenOut, openapi_extra=json_body_schema(Credentials))
async def login(
    gateway: GatewayDep, body: Annotated[Credentials, Depends(json_body(Credentials))]
) -> TokenOut:
    found = await users.credentials(gateway.clients.pool, body.username)
    user, hashed = found if found else (None, None)
    if not await verify_password(hashed, body.password) or user is None:
        raise AuthError("Invalid username or password")
    pair = gateway.tokens.issue(user.id, user.tenant_id)
    return TokenOut(**asdict(pair))


@router.post("/refresh", response_model=TokenOut, openapi_extra=json_body_schema(RefreshBody))
async def refresh(
    gateway: GatewayDep, body: Annotated[RefreshBody, Depends(json_body(RefreshBody))]
) -> TokenOut:
    claims = gateway.tokens.verify(body.refresh_token, "refresh")
    user = await users.get(gateway.clients.pool, claims.user_id)
    if user is None:
        raise AuthError("Invalid token")
    return TokenOut(**asdict(gateway.tokens.issue(user.id, user.tenant_id)))


@router.get("/verify", response_model=UserOut)
async def verify(user: CurrentUser) -> UserOut:
    return UserOut(**asdict(user))
