"""The HTTP API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from gateway.streams.inbox import StreamEndReason
from shared.config import STREAM_TIMEOUT_MAX, TOP_K_MAX, RerankingMethod, RetrievalMode
from shared.contracts.events import ChatOptions, DocumentStatus, Passage, Source
from shared.contracts.labels import (
    MAX_META,
    META_RULE,
    TAG_RULE,
    Filters,
    Meta,
    MetaKey,
    MetaValue,
    Tags,
)
from shared.source_rules import MAX_PATH, MAX_PATTERN, MAX_PATTERNS, NAME_PATTERN, NAME_RULE
from shared.storage.documents import Lane, Visibility
from shared.storage.feedback import COMMENT_MAX
from shared.storage.groups import MAX_NAME as MAX_GROUP_NAME
from shared.storage.groups import MAX_SHARED_GROUPS
from shared.storage.groups import NAME_RULE as GROUP_NAME_RULE

# What ``str.strip()`` trims (the characters ``str.isspace`` names), as a
# regular expression class. Fields that are trimmed say so in their pattern,
# on the value as sent: a value the schema allows is never refused for being
# blank once trimmed, nor one it forbids let through because its padding went.
SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

# Text PostgreSQL can store (shared.contracts.events.storable), as a pattern.
NO_NUL = r"^[^\x00]*$"

Username = Annotated[
    str,
    StringConstraints(pattern=rf"^[{SPACE}]*[A-Za-z0-9_.@-]{{3,64}}[{SPACE}]*$"),
    AfterValidator(str.strip),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
# Something besides whitespace, and no NUL (PostgreSQL's text cannot hold
# it, as shared.contracts.events.storable says). The constraints first: after
# a validator pydantic would not apply them.
Message = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=8000, pattern=rf"^[{SPACE}]*[^\x00{SPACE}][^\x00]*$"
    ),
    AfterValidator(str.strip),
]


class ErrorOut(BaseModel):
    """The body of every error answer outside ``/v1`` (but validation's, 422,
    FastAPI's ``HTTPValidationError``)."""

    detail: str = Field(description="What went wrong, for a person to read")


def integral(value: Any) -> Any:
    """A number without a fraction as an int: JSON Schema's ``integer`` is
    any such number (``39.0`` too), and the strict models take ints only.
    (The bounds go before it in ``Annotated``, or the schema loses them.)"""
    return int(value) if isinstance(value, float) and value.is_integer() else value


TopK = Annotated[int, Field(ge=1, le=TOP_K_MAX), BeforeValidator(integral)]


class Strict(BaseModel):
    """A request body: no field it does not name, and no value converted
    from another JSON type (``"5"`` is not 5, ``0`` not false), as its JSON
    Schema says."""

    model_config = ConfigDict(extra="forbid", strict=True)


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


# No control characters once trimmed: the name is shown in lists and logs
# (and Postgres text cannot hold NUL).
_SHOWN = r"[^\x00-\x1f\x7f" + SPACE + "]"
KeyName = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=100,
        pattern=rf"^[{SPACE}]*{_SHOWN}([^\x00-\x1f\x7f]*{_SHOWN})?[{SPACE}]*$",
    ),
    AfterValidator(str.strip),
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
    visibility: Visibility = Field(
        default="private",
        description="private: the owner only; groups: the owner and the members of `groups`;"
        " tenant: everyone in the tenant",
    )
    groups: list[str] = Field(
        default_factory=list,
        description="The groups the document is shared with (visibility `groups`), by name",
    )
    mine: bool = Field(default=True, description="Whether the caller owns the document")
    lane: Lane = Field(
        default="interactive",
        description="interactive: indexed ahead of the tenant's bulk work; bulk: an import",
    )
    tags: list[str] = Field(default_factory=list, description="The document's tags")
    meta: dict[str, str] = Field(default_factory=dict, description="The document's metadata")


# Not blank, no control characters (shared.storage.groups.clean_name).
GroupName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_GROUP_NAME,
        pattern=r"^[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s][^\x00-\x1f\x7f]*$",
    ),
]
GroupNames = Annotated[list[GroupName], Field(min_length=1, max_length=MAX_SHARED_GROUPS)]


class GroupCreate(Strict):
    name: GroupName = Field(description=f"The group's name: {GROUP_NAME_RULE}")


class GroupOut(BaseModel):
    id: UUID
    name: str
    origin: Literal["local", "claim"] = Field(
        description="local: made by an admin; claim: made by a sign-in whose groups claim named it"
    )
    created_at: datetime
    members: int = Field(description="How many users are in it")


class GroupMemberOut(BaseModel):
    user_id: UUID
    username: str
    origins: list[Literal["admin", "claim"]] = Field(
        description="Who made the membership: an admin, the provider's groups claim, or both"
    )


class DocumentPatch(Strict):
    """What a PATCH changes: any of visibility (with its groups), tags,
    metadata (absent or null: unchanged; nothing given changes nothing). Tags and metadata are
    replaced whole; the chunks follow in both indexes before the answer."""

    visibility: Visibility | None = Field(
        default=None,
        description="`groups` needs `groups`: the groups to share with (ones the caller is"
        " in; an admin: any of the tenant's); `private` and `tenant` end any group share",
    )
    groups: GroupNames | None = Field(
        default=None,
        description="With visibility `groups`: the groups' names (replacing the ones it had)",
    )
    tags: Tags | None = Field(default=None, description=f"Replaces the tags: {TAG_RULE}")
    meta: Meta | None = Field(default=None, description=f"Replaces the metadata: {META_RULE}")


# Said of the options a server without a generative model refuses
# (gateway.streams.chat_stream.check_options): the schema cannot know the
# server's configuration, the description and the documented 400 say it.
NEEDS_GENERATOR = (
    "without one (LLM_PROVIDER `extractive`, the default) the request is refused with 400"
)


FILTERS = (
    "Search only the caller's documents with these tags (any/all), metadata, file name,"
    " content type or upload time; ANDed with what the caller may read, so a filter only"
    " narrows"
)


def _options(body: ChatBody | SearchBody) -> ChatOptions:
    """The retrieval options a chat and a search share, for the workers."""
    return ChatOptions(
        retrieval=body.retrieval,
        reranking=body.reranking,
        hyde=body.hyde,
        compression=body.compression,
        document_ids=body.document_ids,
        filters=body.filters,
    )


class ChatBody(Strict):
    message: Message
    conversation_id: UUID | None = None
    stream_timeout: float | None = Field(default=None, gt=0, le=STREAM_TIMEOUT_MAX)
    top_k: TopK | None = None
    retrieval: RetrievalMode | None = Field(
        default=None, description="dense, lexical or hybrid (default: RETRIEVAL_MODE)"
    )
    reranking: RerankingMethod | None = Field(
        default=None,
        description="none, cross-encoder, mmr or llm (default: RERANKING_METHOD). `llm` needs"
        f" a generative model: {NEEDS_GENERATOR}",
    )
    hyde: bool | None = Field(
        default=None,
        description=f"default: RAG_USE_HYDE. `true` needs a generative model: {NEEDS_GENERATOR}",
    )
    compression: bool | None = Field(default=None, description="default: RAG_USE_COMPRESSION")
    document_ids: list[UUID] | None = Field(
        default=None, min_length=1, max_length=100, description="Search only these documents"
    )
    filters: Filters | None = Field(default=None, description=FILTERS)

    def options(self) -> ChatOptions:
        return _options(self)


class ChatAnswer(BaseModel):
    answer: str
    sources: list[Source] = Field(description="The passages the answer was given, numbered [n]")
    cited: list[int] = Field(description="The source numbers the answer cites")
    grounded: bool = Field(
        description="false when the documents do not answer the question: the answer says"
        " so, `cited` is empty, and `sources` are only the closest passages"
    )
    conversation_id: UUID
    turn: int | None = Field(default=None, description="The answer's turn in the conversation")


class TurnOut(BaseModel):
    conversation_id: UUID
    role: Literal["user", "assistant"]
    content: str
    sources: list[dict[str, Any]]
    created_at: datetime


# --- Server-Sent Events: the ``data`` of each event, by its ``event`` name ---


class TokenEvent(BaseModel):
    """``token``: the next piece of the answer."""

    text: str
    seq: int = Field(description="The reply's place in the answer's events")


class DoneEvent(BaseModel):
    """``done``: the answer is complete."""

    conversation_id: UUID
    seq: int
    cited: list[int] = Field(description="The source numbers the answer cites, in order")
    grounded: bool = Field(description="false when the documents do not answer the question")
    turn: int | None = Field(
        default=None,
        description="The answer's turn in the conversation (`GET /api/conversations/{id}`)",
    )


class ErrorEvent(BaseModel):
    """``error``: the answer failed; ask again. ``seq`` when a worker said so,
    ``reason`` when the gateway cut the stream."""

    message: str
    seq: int | None = None
    reason: StreamEndReason | None = None


class TimeoutEvent(BaseModel):
    """``timeout``: no event within ``stream_timeout`` seconds."""

    message: str
    stream_timeout: float


class ResetEvent(BaseModel):
    """``reset``: the worker answering died and another answers again:
    discard what was shown; the whole new answer follows."""

    attempt: int
    message: str


# Why a document event stream ended (gateway.routes.document_events).
EndReason = Literal["session_ended", "unavailable"]


class DocumentStatusEvent(BaseModel):
    """``status``: a document the caller may read, as it stands now."""

    document_id: UUID
    filename: str
    status: DocumentStatus
    error: str | None = Field(description="Why it failed, when `status` is `failed`")
    chunks: int | None
    at: datetime


class StreamEndedEvent(BaseModel):
    """``ended``: the credential the stream was opened with stopped
    authenticating (``session_ended``), or could not be checked
    (``unavailable``)."""

    reason: EndReason


# --- conversations (gateway.routes.conversations) ---


class ConversationOut(BaseModel):
    id: UUID = Field(description="The `conversation_id` to continue it with on chat")
    title: str = Field(description="From its first question, until renamed")
    turn_count: int = Field(description="Questions asked and answered in it")
    created_at: datetime
    last_activity_at: datetime = Field(description="When its last question was answered")


class ConversationPage(BaseModel):
    conversations: list[ConversationOut] = Field(description="The most recently active first")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


class FeedbackOut(BaseModel):
    rating: Literal["up", "down"]
    comment: str | None
    wrong_source: int | None = Field(description="The number of the source said to be wrong")
    created_at: datetime
    updated_at: datetime = Field(description="When last rated (a new rating replaces the old)")


class ExchangeOut(BaseModel):
    turn: int = Field(description="The turn's number in its conversation, from 1")
    question: str
    answer: str
    sources: list[dict[str, Any]] = Field(description="The passages the answer was given")
    created_at: datetime
    feedback: FeedbackOut | None = Field(
        default=None, description="The user's rating of the answer, if any"
    )


class ConversationDetail(ConversationOut):
    turns: list[ExchangeOut] = Field(description="Its last `limit` turns, oldest first")


# A title is shown in lists: something besides whitespace, no control
# characters (trimmed, as KeyName).
Title = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=200,
        pattern=rf"^[{SPACE}]*{_SHOWN}([^\x00-\x1f\x7f]*{_SHOWN})?[{SPACE}]*$",
    ),
    AfterValidator(str.strip),
]


class ConversationRename(Strict):
    title: Title


# --- feedback on answers (gateway.routes.feedback, gateway.routes.admin) ---

Comment = Annotated[
    str, StringConstraints(max_length=COMMENT_MAX, pattern=NO_NUL), AfterValidator(str.strip)
]


class FeedbackBody(Strict):
    rating: Literal["up", "down"]
    comment: Comment | None = Field(
        default=None, description=f"What was good or wrong (at most {COMMENT_MAX} characters)"
    )
    wrong_source: Annotated[int, Field(ge=1, le=TOP_K_MAX), BeforeValidator(integral)] | None = (
        Field(
            default=None,
            description="The number [n] of a source of the answer that was wrong"
            " (400 if the answer had none so numbered)",
        )
    )


class FeedbackEntryOut(BaseModel):
    """A rating as the tenant's admins read it: who gave it, on what."""

    seq: int = Field(description="Pass as `before` to page back")
    user_id: UUID
    username: str
    conversation_id: UUID
    turn: int
    rating: Literal["up", "down"]
    comment: str | None
    wrong_source: int | None
    wrong_source_ref: dict[str, Any] | None = Field(
        description="The source said to be wrong: its document, file, passage and place"
    )
    question: str
    answer: str
    created_at: datetime
    updated_at: datetime


# --- POST /api/search ---------------------------------------------------------


def _chat_option(name: str) -> str | None:
    return ChatBody.model_fields[name].description


class SearchBody(Strict):
    """The same retrieval options as a chat's, and no conversation."""

    query: Message
    top_k: TopK | None = Field(
        default=None, description="Passages wanted (default: RETRIEVAL_TOP_K)"
    )
    retrieval: RetrievalMode | None = Field(default=None, description=_chat_option("retrieval"))
    reranking: RerankingMethod | None = Field(default=None, description=_chat_option("reranking"))
    hyde: bool | None = Field(default=None, description=_chat_option("hyde"))
    compression: bool | None = Field(default=None, description=_chat_option("compression"))
    document_ids: list[UUID] | None = Field(
        default=None, min_length=1, max_length=100, description="Search only these documents"
    )
    filters: Filters | None = Field(default=None, description=FILTERS)
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=STREAM_TIMEOUT_MAX,
        description="Seconds to wait for the passages (default: STREAM_TIMEOUT); then 504",
    )

    def options(self) -> ChatOptions:
        return _options(self)


class SearchOut(BaseModel):
    query: str
    passages: list[Passage] = Field(description="The caller's passages, best first")


# --- folder sync (docs/sources.md) --------------------------------------------

SourceName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
# Printable: no control characters (the C0 and C1 sets), as shared.source_rules checks.
SourcePath = Annotated[
    str, StringConstraints(min_length=2, max_length=MAX_PATH, pattern=r"^/[^\x00-\x1f\x7f-\x9f]+$")
]
SourcePattern = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_PATTERN, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$"),
]
# Two entries of a synced document's metadata are the sync's: source, path.
SourceMeta = Annotated[
    dict[MetaKey, MetaValue],
    Field(max_length=MAX_META - 2, json_schema_extra={"additionalProperties": False}),
]
SYNC_PATTERNS = (
    "a pattern without `/` matches a file or folder name anywhere (`*.pdf`);"
    " one with `/` the path from the source's folder (`drafts/*`), `*` crossing folders"
)


class SourceCreate(Strict):
    name: SourceName = Field(description=f"Unique in the tenant: {NAME_RULE}")
    path: SourcePath = Field(
        description="An absolute directory path on the sync workers' disks (a local folder, or"
        " an NFS/SMB mount), under one of the server's SYNC_ROOTS; no `..`"
    )
    include: list[SourcePattern] = Field(
        default_factory=list,
        max_length=MAX_PATTERNS,
        description=f"Sync only files matching one of these (none: every file); {SYNC_PATTERNS}",
    )
    exclude: list[SourcePattern] = Field(
        default_factory=list,
        max_length=MAX_PATTERNS,
        description="Never sync files (or folders) matching one of these; wins over include",
    )
    max_bytes: Annotated[int, Field(ge=1, le=2**53), BeforeValidator(integral)] | None = Field(
        default=None,
        description="Files larger than this are skipped, with the reason (default, and at most:"
        " MAX_UPLOAD_MB)",
    )
    visibility: Literal["private", "groups", "tenant"] = Field(
        default="tenant",
        description="Of the source's documents: tenant (everyone in it), groups (the members of"
        " `groups`) or private (the admin who added the source)",
    )
    groups: list[GroupName] = Field(
        default_factory=list,
        max_length=MAX_SHARED_GROUPS,
        description="With visibility `groups` (and only then): the names of the tenant's groups"
        " the source's documents are shared with. 400 for a name the tenant has no group of",
    )
    tags: Tags = Field(default_factory=list, description=f"On every document: {TAG_RULE}")
    meta: SourceMeta = Field(
        default_factory=dict,
        description=f"On every document, besides `source` and `path` (the sync's): {META_RULE}",
    )
    interval_seconds: (
        Annotated[int, Field(ge=10, le=7 * 24 * 3600), BeforeValidator(integral)] | None
    ) = Field(
        default=None,
        description="Seconds from one run's end to the next's start (default:"
        " SYNC_INTERVAL_SECONDS)",
    )


class SourceRunOut(BaseModel):
    id: UUID
    worker: str = Field(description="The sync worker that ran it (host:pid:tag)")
    started_at: datetime
    finished_at: datetime | None
    outcome: Literal["running", "ok", "partial", "failed", "interrupted"] = Field(
        description="partial: some files failed (see `problems`); failed: the run could not go"
        " on (`error`); interrupted: its worker died or lost its lease, and a later run resumes"
    )
    error: str | None
    files_total: int
    files_done: int
    counts: dict[str, int] = Field(
        description="added, changed, renamed, deleted, unchanged, failed, skipped, deferred"
    )


class SourceOut(BaseModel):
    id: UUID
    name: str
    path: str
    include: list[str]
    exclude: list[str]
    max_bytes: int
    visibility: Literal["private", "groups", "tenant"]
    groups: list[str] = Field(description="With visibility `groups`: the groups' names")
    tags: list[str]
    meta: dict[str, str]
    interval_seconds: int
    owner_id: UUID = Field(description="Owner of the source's documents")
    created_at: datetime
    next_run_at: datetime
    state: Literal["idle", "running", "removing"]
    current_run: SourceRunOut | None = Field(description="The run going on, with its progress")
    last_run: SourceRunOut | None = Field(description="The last finished run")
    files: dict[str, int] = Field(description="Files by state: synced, pending, failed, skipped")


class SourceProblemOut(BaseModel):
    path: str = Field(description="Relative to the source's folder (a folder ends with /)")
    status: Literal["failed", "skipped", "not indexed"] = Field(
        description="failed: tried again every run; skipped: refused by a rule, tried again"
        " when the file changes; not indexed: its document failed to index"
    )
    reason: str
    failures: int = Field(description="Runs in a row that failed on it")
    document_id: UUID | None


class SourceDetailOut(SourceOut):
    problems: list[SourceProblemOut] = Field(description="Up to 200, failed first")
    runs: list[SourceRunOut] = Field(description="The last 10 runs, newest first")
