"""Every message on Kafka, as a pydantic model: the single source of the wire
format and of the checked-in ``schemas/``.

JSON on the wire. Unknown fields are ignored so that a newer producer does not
break an older consumer during a rolling upgrade; ``schema_version`` changes
when a field changes meaning.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID, uuid4

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from shared.config import TOP_K_MAX, RerankingMethod, RetrievalMode
from shared.contracts.labels import Filters

SCHEMA_VERSION: Literal[1] = 1

CorrelationId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
DocumentStatus = Literal["queued", "processing", "indexed", "failed"]
StreamId = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
AttemptId = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_stream_id() -> str:
    return uuid4().hex


def new_attempt_id() -> str:
    return uuid4().hex


class Event(BaseModel):
    """Fields every event carries: who it is for and which request it serves."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    correlation_id: CorrelationId
    tenant_id: UUID
    user_id: UUID
    created_at: AwareDatetime = Field(default_factory=utcnow)


# --- ingestion ---------------------------------------------------------------


class IngestRequest(Event):
    """``rag.ingest.requests``, keyed by document id. A claim check: the bytes
    stay in the blob store, the message carries where to find them."""

    type: Literal["ingest.request"] = "ingest.request"
    document_id: UUID
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=255)
    blob_key: str = Field(min_length=1, max_length=1024)
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class IngestStatus(Event):
    """``rag.ingest.events``: a document changed status."""

    type: Literal["ingest.status"] = "ingest.status"
    document_id: UUID
    status: DocumentStatus
    chunks: int = Field(default=0, ge=0)
    error: str | None = None


# --- chat --------------------------------------------------------------------


class ReplyTo(BaseModel):
    """Where the gateway that owns the stream listens for its replies."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    topic: str = Field(min_length=1, max_length=249)
    partition: int = Field(ge=0)


class ChatOptions(BaseModel):
    """Per-request overrides of the retrieval settings; ``None`` keeps the
    worker's setting (RETRIEVAL_MODE, RERANKING_METHOD, RAG_USE_HYDE,
    RAG_USE_COMPRESSION). ``top_k`` stays on the request itself."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    retrieval: RetrievalMode | None = None
    reranking: RerankingMethod | None = None
    hyde: bool | None = None
    compression: bool | None = None
    document_ids: list[UUID] | None = Field(
        default=None, min_length=1, max_length=100, description="Search only these documents"
    )
    filters: Filters | None = Field(
        default=None,
        description="Search only documents with these tags, metadata, name, type or upload"
        " time (ANDed with what the caller may read). Unknown filter fields are refused, never"
        " ignored: a worker that cannot apply a filter must not search wider.",
    )


def storable(text: str) -> str:
    """``text`` if PostgreSQL can store it: its text type refuses NUL.
    Refused where a message comes in, with a reason, not in a worker. (An
    unpaired surrogate, which UTF-8 cannot carry, pydantic's own str check
    refuses before this runs.)"""
    if "\x00" in text:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return text


# Text a user wrote: a question or an earlier turn of the conversation.
UserText = Annotated[str, AfterValidator(storable)]


class Turn(BaseModel):
    """An earlier message of a conversation the client keeps itself."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    role: Literal["user", "assistant"]
    content: UserText = Field(max_length=8000)


class ChatRequest(Event):
    """``rag.chat.requests``, keyed by conversation id."""

    type: Literal["chat.request"] = "chat.request"
    stream_id: StreamId = Field(
        default_factory=new_stream_id,
        description="Chosen by the server for each request: replies and cancels are keyed by"
        " it and checked against the tenant and user (correlation_id is only for logs)",
    )
    conversation_id: UUID
    message: UserText = Field(min_length=1, max_length=8000)
    top_k: int | None = Field(default=None, ge=1, le=TOP_K_MAX)
    options: ChatOptions = Field(default_factory=ChatOptions)
    deadline: AwareDatetime
    reply_to: ReplyTo | None = None
    history: list[Turn] | None = Field(
        default=None,
        max_length=40,
        description="The conversation before `message`, oldest first, when the client keeps it"
        " (the OpenAI-compatible API sends the whole conversation each time); null: the stored"
        " history of `conversation_id`. Workers that predate it ignore it and read the stored"
        " history.",
    )


# --- search: retrieval without an answer --------------------------------------


class SearchRequest(Event):
    """``rag.search.requests``, keyed by stream id: the caller's passages for
    a query, ranked as a chat with the same options would rank its sources,
    and no answer. One ``SearchReply`` comes back to ``reply_to``."""

    type: Literal["search.request"] = "search.request"
    stream_id: StreamId = Field(
        default_factory=new_stream_id,
        description="Chosen by the server for each request: the reply is keyed by it and"
        " checked against the tenant and user",
    )
    query: UserText = Field(min_length=1, max_length=8000)
    top_k: int | None = Field(default=None, ge=1, le=TOP_K_MAX)
    options: ChatOptions = Field(default_factory=ChatOptions)
    deadline: AwareDatetime
    reply_to: ReplyTo | None = None


class StageScores(BaseModel):
    """The score each stage that ranked a passage gave it; null where the
    stage did not run or did not find the passage."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    dense: float | None = Field(default=None, description="Cosine similarity of the embeddings")
    bm25: float | None = Field(default=None, description="BM25 score of the lexical search")
    fused: float | None = Field(
        default=None, description="Reciprocal-rank-fusion score of dense and BM25 (hybrid)"
    )
    reranker: float | None = Field(
        default=None, description="The reranker's own score (cross-encoder, MMR or LLM)"
    )
    reranked_fused: float | None = Field(
        default=None,
        description="RRF of the retrieval order and the reranker's (RERANK_FUSION), which"
        " ranked it last when present",
    )


class Passage(BaseModel):
    """One retrieved passage, ranked."""

    model_config = ConfigDict(frozen=True)

    rank: int = Field(ge=1, description="1 is the best")
    document_id: UUID
    filename: str
    chunk_index: int = Field(ge=0)
    page: int | None = Field(default=None, ge=1, description="PDF page the passage is on")
    section: str | None = Field(
        default=None, description="The heading path the passage is under (`A > B`)"
    )
    text: str = Field(description="The passage (compressed when compression ran)")
    score: float = Field(description="The score that ranked it last (higher is better)")
    scores: StageScores


class SearchReply(Event):
    """On ``rag.chat.replies``: the one reply to a ``SearchRequest``."""

    type: Literal["search.reply"] = "search.reply"
    stream_id: StreamId
    seq: int = Field(default=0, ge=0, description="Always 0: a search has one reply")
    attempt_id: AttemptId | None = None
    outcome: Literal["answered", "refused", "failed"] = Field(
        default="answered",
        description="refused: the request asked for what this worker cannot do (`error` says"
        " what); failed: the search broke (try again). Either way `passages` is empty.",
    )
    passages: list[Passage] = Field(default_factory=list)
    error: str | None = Field(default=None, description="Why it was refused or failed")


class ChatCancel(Event):
    """``rag.chat.cancel``: stop generating; nobody is listening any more."""

    type: Literal["chat.cancel"] = "chat.cancel"
    stream_id: StreamId
    reason: Literal["timeout", "client_disconnected"]


class Source(BaseModel):
    """A passage the answer may cite as ``[n]``."""

    model_config = ConfigDict(frozen=True)

    n: int = Field(ge=1, description="The citation number: the answer cites this as [n]")
    document_id: UUID
    filename: str
    chunk_index: int = Field(ge=0)
    score: float
    snippet: str
    text: str = Field(default="", description="The whole passage, as the answer was given it")
    page: int | None = Field(default=None, ge=1, description="PDF page the passage is on")
    section: str | None = Field(default=None, description="Heading the passage is under")


class Reply(Event):
    """Common shape of everything on ``rag.chat.replies``."""

    stream_id: StreamId
    conversation_id: UUID
    seq: int = Field(ge=0, description="0, 1, 2, ... within one answer attempt")
    attempt_id: AttemptId | None = Field(
        default=None,
        description="Which answer attempt sent this: a request answered twice (redelivered"
        " after a crash) has two, and the gateway relays only the first it hears",
    )


class TokenReply(Reply):
    type: Literal["token"] = "token"
    text: str


class SourcesReply(Reply):
    type: Literal["sources"] = "sources"
    sources: list[Source]


class DoneReply(Reply):
    type: Literal["done"] = "done"
    cited: list[int] = Field(
        default_factory=list, description="The source numbers the answer cites, in order"
    )
    grounded: bool = Field(
        default=True,
        description="false when the documents do not answer the question: the answer says"
        " so, `cited` is empty, and the sources sent are only the closest passages."
        " A reply from an older worker has no such field and is grounded.",
    )
    turn: int | None = Field(
        default=None,
        ge=1,
        description="The answer's turn in its conversation, as stored (feedback names it);"
        " null from an older worker",
    )


class ErrorReply(Reply):
    type: Literal["error"] = "error"
    message: str


AnyReply = Annotated[
    TokenReply | SourcesReply | DoneReply | ErrorReply | SearchReply, Field(discriminator="type")
]
REPLY_ADAPTER: TypeAdapter[TokenReply | SourcesReply | DoneReply | ErrorReply | SearchReply] = (
    TypeAdapter(AnyReply)
)
TERMINAL_REPLIES = ("done", "error", "search.reply")


# --- feedback ----------------------------------------------------------------


class SourceRef(BaseModel):
    """Where a source of an answer came from, without its text."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    n: int = Field(ge=1, description="Its citation number in the answer")
    document_id: UUID
    filename: str
    chunk_index: int = Field(ge=0)
    page: int | None = None
    section: str | None = None


class FeedbackGiven(Event):
    """``rag.feedback``, keyed by conversation id: a user rated an answer
    (``user_id`` gave it). One rating per user and turn: a later one for the
    same turn replaces the earlier (``replaced``), so a consumer that counts
    keeps the last per (tenant_id, user_id, conversation_id, turn)."""

    type: Literal["feedback"] = "feedback"
    conversation_id: UUID
    turn: int = Field(ge=1, description="The rated answer's turn in its conversation")
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=2000)
    wrong_source: int | None = Field(
        default=None, ge=1, description="The number [n] of the source said to be wrong"
    )
    question: str
    answer: str
    sources: list[SourceRef] = Field(description="The sources the answer was given, numbered")
    replaced: bool = Field(description="Whether it replaces an earlier rating of the turn")


# --- failures ----------------------------------------------------------------


class DeadLetter(BaseModel):
    """``<topic>.dlq``: a message a consumer could not handle, and why."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    type: Literal["dead_letter"] = "dead_letter"
    correlation_id: str | None = None
    source_topic: str
    partition: int
    offset: int
    consumer_group: str
    reason: str
    detail: str
    payload: str = Field(description="The original message, decoded as UTF-8 with replacement")
    failed_at: AwareDatetime = Field(default_factory=utcnow)
