"""Groups: the caller's own (``GET /api/groups``), and the tenant's, managed
by its admins (``/api/admin/groups``).

Every query is scoped to the caller's tenant in SQL, so another tenant's
group or user id answers 404 exactly like an unknown one. Removing a member
takes effect on their next request (every reader asks PostgreSQL), cached
answers included (the membership's trigger outdates them in its transaction).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status

from gateway.http.deps import Admin, CurrentUser, GatewayDep, client_ip, json_body
from gateway.http.openapi import errors, json_body_schema, link
from gateway.identity import audit
from gateway.models import GroupCreate, GroupMemberOut, GroupOut
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.storage import groups
from shared.storage.groups import Group

router = APIRouter(tags=["groups"])
_ADMINS_ONLY = (Forbidden, "The caller is not an administrator of their tenant")
_NO_SUCH_GROUP = (NotFound, "No such group in the caller's tenant")
_NO_SUCH_MEMBER = (NotFound, "No such group, or no such user, in the caller's tenant")
_THIS_GROUP = {"group_id": "$response.body#/id"}


def _out(group: Group) -> GroupOut:
    return GroupOut(
        id=group.id,
        name=group.name,
        origin=group.origin,
        created_at=group.created_at,
        members=group.members,
    )


@router.get("/api/groups", response_model=list[GroupOut])
async def my_groups(gateway: GatewayDep, user: CurrentUser) -> list[GroupOut]:
    """The groups the caller is in: those they may share documents with
    (whose documents they read)."""
    found = await groups.of_user(gateway.clients.pool, user.tenant_id, user.id)
    return [_out(g) for g in found]


@router.get("/api/admin/groups", response_model=list[GroupOut], responses=errors(_ADMINS_ONLY))
async def list_groups(gateway: GatewayDep, admin: Admin) -> list[GroupOut]:
    """Every group of the caller's tenant, by name."""
    return [_out(g) for g in await groups.in_tenant(gateway.clients.pool, admin.tenant_id)]


@router.post(
    "/api/admin/groups",
    status_code=status.HTTP_201_CREATED,
    response_model=GroupOut,
    openapi_extra=json_body_schema(GroupCreate),
    responses={
        **errors(
            _ADMINS_ONLY,
            (Conflict, "The tenant has a group of that name (ignoring case)"),
            (InvalidInput, "A name that is blank once trimmed"),
        ),
        201: {
            "links": {
                "GroupMembers": link("group_members", "Its members", **_THIS_GROUP),
                "DeleteGroup": link("delete_group", "Delete it", **_THIS_GROUP),
            }
        },
    },
)
async def create_group(
    gateway: GatewayDep,
    admin: Admin,
    request: Request,
    body: Annotated[GroupCreate, Depends(json_body(GroupCreate))],
) -> GroupOut:
    """A group of the caller's tenant (origin ``local``)."""
    pool = gateway.clients.pool
    async with pool.acquire() as conn, conn.transaction():
        group = await groups.create(conn, admin.tenant_id, body.name)
        await audit.record(
            conn,
            tenant_id=admin.tenant_id,
            actor_id=admin.id,
            action="group.created",
            target=group.id,
            detail={"name": group.name},
            ip=client_ip(request),
        )
    return _out(group)


@router.get(
    "/api/admin/groups/{group_id}/members",
    response_model=list[GroupMemberOut],
    responses=errors(_ADMINS_ONLY, _NO_SUCH_GROUP),
)
async def group_members(gateway: GatewayDep, admin: Admin, group_id: UUID) -> list[GroupMemberOut]:
    """The group's members, by username, with who made each membership."""
    pool = gateway.clients.pool
    if await groups.get(pool, admin.tenant_id, group_id) is None:
        raise NotFound("no such group")
    found = await groups.members(pool, admin.tenant_id, group_id)
    return [
        GroupMemberOut(user_id=m.user_id, username=m.username, origins=m.origins) for m in found
    ]


@router.delete(
    "/api/admin/groups/{group_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(_ADMINS_ONLY, _NO_SUCH_GROUP),
)
async def delete_group(
    gateway: GatewayDep, admin: Admin, group_id: UUID, request: Request
) -> Response:
    """The group, its memberships and its shares go at once: a document
    shared only with it is then its owner's alone (its visibility stays
    ``groups``, with no group left)."""
    async with gateway.clients.pool.acquire() as conn, conn.transaction():
        group = await groups.delete(conn, admin.tenant_id, group_id)
        if group is None:
            raise NotFound("no such group")
        await audit.record(
            conn,
            tenant_id=admin.tenant_id,
            actor_id=admin.id,
            action="group.deleted",
            target=group_id,
            detail={"name": group.name},
            ip=client_ip(request),
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/api/admin/groups/{group_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(_ADMINS_ONLY, _NO_SUCH_MEMBER),
)
async def add_group_member(
    gateway: GatewayDep, admin: Admin, group_id: UUID, user_id: UUID, request: Request
) -> Response:
    """Make a user of the tenant a member (an admin's membership; adding
    one that exists changes nothing)."""
    async with gateway.clients.pool.acquire() as conn, conn.transaction():
        if not await groups.add_member(conn, admin.tenant_id, group_id, user_id):
            raise NotFound("no such group or user")
        await audit.record(
            conn,
            tenant_id=admin.tenant_id,
            actor_id=admin.id,
            action="group.member_added",
            target=group_id,
            detail={"user_id": str(user_id)},
            ip=client_ip(request),
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/api/admin/groups/{group_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(_ADMINS_ONLY, _NO_SUCH_MEMBER),
)
async def remove_group_member(
    gateway: GatewayDep, admin: Admin, group_id: UUID, user_id: UUID, request: Request
) -> Response:
    """End the user's membership, whoever made it; it takes effect on their
    next request, cached answers included. (A membership the provider's
    groups claim made comes back at the user's next sign-on, or next request
    with a provider token, while the claim still names the group: remove
    them at the provider.)"""
    async with gateway.clients.pool.acquire() as conn, conn.transaction():
        if not await groups.remove_member(conn, admin.tenant_id, group_id, user_id):
            raise NotFound("no such member")
        await audit.record(
            conn,
            tenant_id=admin.tenant_id,
            actor_id=admin.id,
            action="group.member_removed",
            target=group_id,
            detail={"user_id": str(user_id)},
            ip=client_ip(request),
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
