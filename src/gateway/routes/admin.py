"""A tenant's administration, by its admins: its users, its audit log, and
the feedback its users gave on answers (listed, and exported as JSON or CSV).

Every query here is scoped to the caller's own tenant in SQL, so another
tenant's user id answers 404 exactly like an unknown one: an admin can
neither act on nor learn about anyone outside their organisation.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import StreamingResponse

from gateway.http.deps import Admin, GatewayDep, client_ip, json_body
from gateway.http.openapi import errors, json_body_schema, link
from gateway.identity import audit, users
from gateway.identity.users import User
from gateway.models import AuditEntryOut, FeedbackEntryOut, MemberCreate, MemberOut
from gateway.state import Gateway
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.storage import feedback
from shared.storage.feedback import Entry, Rating

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


FEEDBACK_PAGE_MAX = 500
RatingFilter = Annotated[Rating | None, Query(description="Only this rating")]


def _entry(e: Entry) -> FeedbackEntryOut:
    return FeedbackEntryOut(
        seq=e.seq,
        user_id=e.user_id,
        username=e.username,
        conversation_id=e.conversation_id,
        turn=e.turn,
        rating=e.feedback.rating,
        comment=e.feedback.comment,
        wrong_source=e.feedback.wrong_source,
        wrong_source_ref=e.wrong,
        question=e.question,
        answer=e.answer,
        created_at=e.feedback.created_at,
        updated_at=e.feedback.updated_at,
    )


@router.get("/feedback", response_model=list[FeedbackEntryOut])
async def list_feedback(
    gateway: GatewayDep,
    admin: Admin,
    limit: Annotated[int, Query(ge=1, le=FEEDBACK_PAGE_MAX)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=BIGINT_MAX, description="Ratings older than this `seq`")
    ] = None,
    rating: RatingFilter = None,
) -> list[FeedbackEntryOut]:
    """The tenant's ratings of answers, the most recently given first, each
    with the question and answer it rates."""
    entries = await feedback.for_tenant(
        gateway.clients.pool, admin.tenant_id, rating=rating, limit=limit, before=before
    )
    return [_entry(e) for e in entries]


# The CSV's columns: the entry's fields, the wrong source's place flattened.
CSV_COLUMNS = (
    "updated_at",
    "username",
    "user_id",
    "conversation_id",
    "turn",
    "rating",
    "comment",
    "wrong_source",
    "wrong_source_file",
    "wrong_source_document_id",
    "question",
    "answer",
)
_EXPORTED = {
    "json": {
        "schema": {"type": "array", "items": {"$ref": "#/components/schemas/FeedbackEntryOut"}}
    },
    "csv": {"schema": {"type": "string"}},
}


@router.get(
    "/feedback/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every rating of the tenant, newest first, as a file to save",
            "content": {"application/json": _EXPORTED["json"], "text/csv": _EXPORTED["csv"]},
        }
    },
)
async def export_feedback(
    gateway: GatewayDep,
    admin: Admin,
    format: Annotated[Literal["json", "csv"], Query(description="The file's format")] = "json",
    rating: RatingFilter = None,
) -> StreamingResponse:
    """The tenant's feedback, whole (read a page at a time, sent as read)."""
    entries = _all_feedback(gateway, admin, rating)
    body = _as_csv(entries) if format == "csv" else _as_json(entries)
    media = "text/csv; charset=utf-8" if format == "csv" else "application/json"
    disposition = f'attachment; filename="feedback.{format}"'
    return StreamingResponse(body, media_type=media, headers={"Content-Disposition": disposition})


async def _all_feedback(
    gateway: Gateway, admin: User, rating: Rating | None
) -> AsyncIterator[FeedbackEntryOut]:
    before = None
    while True:
        page = await feedback.for_tenant(
            gateway.clients.pool,
            admin.tenant_id,
            rating=rating,
            limit=FEEDBACK_PAGE_MAX,
            before=before,
        )
        for entry in page:
            yield _entry(entry)
        if len(page) < FEEDBACK_PAGE_MAX:
            return
        before = page[-1].seq


async def _as_json(entries: AsyncIterator[FeedbackEntryOut]) -> AsyncIterator[str]:
    yield "["
    first = True
    async for entry in entries:
        yield ("" if first else ",") + entry.model_dump_json()
        first = False
    yield "]\n"


async def _as_csv(entries: AsyncIterator[FeedbackEntryOut]) -> AsyncIterator[str]:
    yield _csv_line(CSV_COLUMNS)
    async for e in entries:
        wrong = e.wrong_source_ref or {}
        yield _csv_line(
            (
                e.updated_at.isoformat(),
                e.username,
                str(e.user_id),
                str(e.conversation_id),
                str(e.turn),
                e.rating,
                e.comment or "",
                "" if e.wrong_source is None else str(e.wrong_source),
                str(wrong.get("filename", "")),
                str(wrong.get("document_id", "")),
                e.question,
                e.answer,
            )
        )


def _csv_line(values: tuple[str, ...]) -> str:
    line = io.StringIO()
    # A cell a spreadsheet would run as a formula is quoted as text.
    csv.writer(line).writerow([_inert(v) for v in values])
    return line.getvalue()


def _inert(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
