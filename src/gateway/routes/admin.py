"""A tenant's administration, by its admins: its users, and its audit log.

Every query here is scoped to the caller's own tenant in SQL, so another
tenant's user id answers 404 exactly like an unknown one: an admin can
neither act on nor learn about anyone outside their organisation.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, status

from gateway.http.deps import CurrentUser, GatewayDep, client_ip, json_body
from gateway.http.openapi import errors, json_body_schema, link
from gateway.identity import audit, users
from gateway.identity.users import User
from gateway.models import AuditEntryOut, MemberCreate, MemberOut
from gateway.state import Gateway
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound

# Every route here: only the tenant's admins.
router = APIRouter(
    prefix="/api/admin",
    tags=["admin"],
    responses=errors((Forbidden, "The caller is not an administrator of their tenant")),
)
_NO_SUCH_USER = (NotFound, "No such user in the caller's tenant")
_THIS_USER = {"user_id": "$response.body#/id"}
AUDIT_PAGE_MAX = 500
# audit_log.id is a bigint: a larger `before` is a 422, not a database error.
BIGINT_MAX = 2**63 - 1


async def current_admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("this needs an administrator of your organisation")
    return user


Admin = Annotated[User, Depends(current_admin)]


def _member(user: User) -> MemberOut:
    return MemberOut(
        id=user.id,
        username=user.username,
        role=user.role,
        created_at=user.created_at,
        disabled_at=user.disabled_at,
    )


@router.get("/users", response_model=list[MemberOut])
async def list_users(gateway: GatewayDep, admin: Admin) -> list[MemberOut]:
    return [_member(user) for user in await users.in_tenant(gateway.clients.pool, admin.tenant_id)]


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberOut,
    openapi_extra=json_body_schema(MemberCreate),
    responses={
        **errors((Conflict, "The username is taken (usernames are global)")),
        201: {
            "links": {
                "DisableUser": link("disable_user", "Disable the account", **_THIS_USER),
                "EnableUser": link("enable_user", "Enable it again", **_THIS_USER),
            }
        },
    },
)
async def create_user(
    gateway: GatewayDep,
    admin: Admin,
    request: Request,
    body: Annotated[MemberCreate, Depends(json_body(MemberCreate))],
) -> MemberOut:
    """A user of the caller's tenant (409 if the username is taken anywhere:
    usernames are global, they are what people sign in with)."""
    pool = gateway.clients.pool
    hashed = await gateway.tokens.passwords.hash(body.password)
    user = await users.create(
        pool, body.username, hashed, tenant_id=admin.tenant_id, role=body.role
    )
    await audit.record(
        pool,
        tenant_id=admin.tenant_id,
        actor_id=admin.id,
        action="user.created",
        target=user.id,
        detail={"username": user.username, "role": user.role},
        ip=client_ip(request),
    )
    return _member(user)


async def _set_disabled(
    gateway: Gateway, admin: User, user_id: UUID, request: Request, *, disabled: bool
) -> MemberOut:
    if disabled and user_id == admin.id:
        # Also keeps at least one enabled admin in the tenant: the caller.
        raise InvalidInput("you cannot disable your own account")
    async with gateway.clients.pool.acquire() as conn, conn.transaction():
        user = await users.set_disabled(conn, admin.tenant_id, user_id, disabled=disabled)
        if user is None:
            raise NotFound("no such user")
        await audit.record(
            conn,
            tenant_id=admin.tenant_id,
            actor_id=admin.id,
            action="user.disabled" if disabled else "user.enabled",
            target=user.id,
            detail={"username": user.username},
            ip=client_ip(request),
        )
    return _member(user)


@router.post(
    "/users/{user_id}/disable",
    response_model=MemberOut,
    responses=errors((InvalidInput, "The caller's own account"), _NO_SUCH_USER),
)
async def disable_user(
    gateway: GatewayDep, admin: Admin, user_id: UUID, request: Request
) -> MemberOut:
    """The user's tokens and API keys stop working on their next request,
    their sessions end, and they cannot sign in until enabled again."""
    return await _set_disabled(gateway, admin, user_id, request, disabled=True)


@router.post("/users/{user_id}/enable", response_model=MemberOut, responses=errors(_NO_SUCH_USER))
async def enable_user(
    gateway: GatewayDep, admin: Admin, user_id: UUID, request: Request
) -> MemberOut:
    """The user may sign in again (their old sessions stay ended)."""
    return await _set_disabled(gateway, admin, user_id, request, disabled=False)


@router.get("/audit", response_model=list[AuditEntryOut])
async def audit_log(
    gateway: GatewayDep,
    admin: Admin,
    limit: Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=BIGINT_MAX, description="Entries older than this id")
    ] = None,
    action: Annotated[audit.Action | None, Query(description="Only this action")] = None,
) -> list[AuditEntryOut]:
    """The caller's tenant's audit log, newest first."""
    entries = await audit.list_for(
        gateway.clients.pool, admin.tenant_id, limit=limit, before_id=before, action=action
    )
    return [
        AuditEntryOut(
            id=e.id,
            actor_id=e.actor_id,
            action=e.action,
            target=e.target,
            detail=e.detail,
            ip=e.ip,
            created_at=e.created_at,
        )
        for e in entries
    ]
