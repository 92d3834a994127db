"""The HTTP API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from shared.config import STREAM_TIMEOUT_MAX, TOP_K_MAX, RerankingMethod, RetrievalMode
from shared.contracts.events import ChatOptions, DocumentStatus, Source, storable

Username = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.@-]{3,64}$")
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
# The constraints first: after a validator pydantic would not apply them.
Message = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=8000),
    AfterValidator(storable),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Credentials(Strict):
    username: Username
    password: Password


class RefreshBody(Strict):
    refresh_token: str = Field(min_length=1, max_length=4096)


class LogoutBody(Strict):
    refresh_token: str | None = Field(
        default=None,
        max_length=4096,
        description="The session to end; without it, the access token's session",
    )


# No control characters: the name is shown in lists and logs (and Postgres
# text cannot hold NUL).
KeyName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


class KeyCreate(Strict):
    name: KeyName


class KeyOut(BaseModel):
    id: UUID
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The API key: shown this once, never again")


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int


class UserOut(BaseModel):
    id: UUID
    username: str
    tenant_id: UUID
    created_at: datetime
    role: Literal["admin", "member"]
    disabled_at: datetime | None = None


class MemberCreate(Strict):
    username: Username
    password: Password
    role: Literal["admin", "member"] = "member"


class MemberOut(BaseModel):
    """A user as their tenant's admins see them."""

    id: UUID
    username: str
    role: Literal["admin", "member"]
    created_at: datetime
    disabled_at: datetime | None


class AuditEntryOut(BaseModel):
    id: int = Field(description="Pass as `before` to page back")
    actor_id: UUID | None = Field(description="Who acted; null when nobody was signed in")
    action: str
    target: str | None
    detail: dict[str, Any]
    ip: str | None
    created_at: datetime


class DocumentOut(BaseModel):
    id: UUID
    filename: str
    content_type: str
    size_bytes: int
    status: DocumentStatus
    chunks: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    visibility: Literal["private", "tenant"] = Field(
        default="private", description="private: the owner only; tenant: everyone in the tenant"
    )
    mine: bool = Field(default=True, description="Whether the caller owns the document")


class VisibilityBody(Strict):
    visibility: Literal["private", "tenant"]


class ChatBody(Strict):
    message: Message
    conversation_id: UUID | None = None
    stream_timeout: float | None = Field(default=None, gt=0, le=STREAM_TIMEOUT_MAX)
    top_k: int | None = Field(default=None, ge=1, le=TOP_K_MAX)
    retrieval: RetrievalMode | None = Field(
        default=None, description="dense, lexical or hybrid (default: RETRIEVAL_MODE)"
    )
    reranking: RerankingMethod | None = Field(
        default=None, description="none, cross-encoder, mmr or llm (default: RERANKING_METHOD)"
    )
    hyde: bool | None = Field(default=None, description="default: RAG_USE_HYDE")
    compression: bool | None = Field(default=None, description="default: RAG_USE_COMPRESSION")
    document_ids: list[UUID] | None = Field(
        default=None, min_length=1, max_length=100, description="Search only these documents"
    )

    def options(self) -> ChatOptions:
        return ChatOptions(
            retrieval=self.retrieval,
            reranking=self.reranking,
            hyde=self.hyde,
            compression=self.compression,
            document_ids=self.document_ids,
        )


class ChatAnswer(BaseModel):
    answer: str
    sources: list[Source] = Field(description="The passages the answer was given, numbered [n]")
    cited: list[int] = Field(description="The source numbers the answer cites")
    grounded: bool = Field(
        description="false when the documents do not answer the question: the answer says"
        " so, `cited` is empty, and `sources` are only the closest passages"
    )
    conversation_id: UUID


class TurnOut(BaseModel):
    conversation_id: UUID
    role: Literal["user", "assistant"]
    content: str
    sources: list[dict[str, Any]]
    created_at: datetime
