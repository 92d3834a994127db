"""API keys: create (shown once), list, revoke, all the caller's own.

Managing keys needs a signed-in session: an API key cannot mint or revoke
keys, so a leaked key cannot make itself permanent.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated
from uuid import UUID

import structlog
from fastapi import APIRouter, Depends, Request, status

from gateway.http.deps import CurrentPrincipal, GatewayDep, client_ip, json_body
from gateway.http.openapi import errors, json_body_schema, link
from gateway.identity import api_keys, audit
from gateway.identity.users import User
from gateway.models import KeyCreate, KeyCreated, KeyOut
from shared.errors import Forbidden, NotFound

log = structlog.get_logger(__name__)
# Every route here: an API key cannot manage keys.
router = APIRouter(
    prefix="/api/keys",
    tags=["keys"],
    responses=errors((Forbidden, "Called with an API key: keys are managed from a session")),
)


async def session_user(principal: CurrentPrincipal) -> User:
    if principal.family_id is None:
        raise Forbidden("API keys are managed from a signed-in session, not with an API key")
    return principal.user


SessionUser = Annotated[User, Depends(session_user)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    openapi_extra=json_body_schema(KeyCreate),
    responses={
        201: {"links": {"RevokeKey": link("revoke_key", "Revoke it", key_id="$response.body#/id")}}
    },
)
async def create_key(
    gateway: GatewayDep,
    request: Request,
    user: SessionUser,
    body: Annotated[KeyCreate, Depends(json_body(KeyCreate))],
) -> KeyCreated:
    pool = gateway.clients.pool
    key, secret = await api_keys.create(pool, user, body.name)
    await audit.record(
        pool,
        tenant_id=user.tenant_id,
        actor_id=user.id,
        action="key.created",
        target=key.id,
        detail={"name": key.name, "prefix": key.prefix},
        ip=client_ip(request),
    )
    log.info("API key created", key_id=str(key.id), user_id=str(user.id))
    return KeyCreated(**asdict(key), key=secret)


@router.get("", response_model=list[KeyOut])
async def list_keys(gateway: GatewayDep, user: SessionUser) -> list[KeyOut]:
    return [KeyOut(**asdict(key)) for key in await api_keys.list_for(gateway.clients.pool, user.id)]


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors((NotFound, "No such API key of the caller's")),
)
async def revoke_key(
    gateway: GatewayDep, request: Request, user: SessionUser, key_id: UUID
) -> None:
    pool = gateway.clients.pool
    if not await api_keys.revoke(pool, user.id, key_id):
        raise NotFound("no such API key")
    await audit.record(
        pool,
        tenant_id=user.tenant_id,
        actor_id=user.id,
        action="key.revoked",
        target=key_id,
        ip=client_ip(request),
    )
    log.info("API key revoked", key_id=str(key_id), user_id=str(user.id))
