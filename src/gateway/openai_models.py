"""The bodies of the OpenAI-compatible API (``/v1``), in OpenAI's shapes, with
ragstream's extension fields beside OpenAI's (docs/openai.md).

Requests ignore fields they do not name, as OpenAI-compatible servers do:
clients send many knobs (temperature, max_tokens, user, ...) that a
retrieval service answers the same way whatever their value."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from gateway.models import NEEDS_GENERATOR, NO_NUL, TopK, integral
from shared.config import RerankingMethod, RetrievalMode
from shared.contracts.events import Source, storable
from shared.contracts.labels import Filters

# Text a user wrote: no NUL, refused by storable with a reason that says so
# (a pattern's error would quote the pattern), and said by the schema.
UserText = Annotated[
    str, AfterValidator(storable), WithJsonSchema({"type": "string", "pattern": NO_NUL})
]

MODEL_ID = "ragstream"
# When the model was first served: OpenAI's model objects carry a creation time.
MODEL_CREATED = 1_795_910_400  # 2026-11-29


class Lenient(BaseModel):
    """Fields it does not name are ignored; those it names take their JSON
    type only (``"5"`` is not 5), as its JSON Schema says."""

    model_config = ConfigDict(extra="ignore", strict=True)


class ContentPart(Lenient):
    """One part of a message's content; only ``text`` parts are answered."""

    type: str = Field(max_length=64)
    text: UserText | None = None


class ChatMessage(Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    # A text's length is bounded by the body's (MAX_JSON_BODY_KB).
    content: UserText | Annotated[list[ContentPart], Field(max_length=100)] | None = None


class StreamOptions(Lenient):
    include_usage: bool = False


class CompletionRequest(Lenient):
    model: str = Field(min_length=1, max_length=256, description=f"`{MODEL_ID}`")
    messages: list[ChatMessage] = Field(
        min_length=1,
        max_length=1000,
        description="The conversation, oldest first; the last message is the question (role"
        " `user`, with text). System and developer messages are ignored. Refused with 400:"
        " a last message that is not the user's, a `tool` or `function` message, content"
        " parts other than text.",
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Annotated[int, Field(ge=1, le=1), BeforeValidator(integral)] | None = Field(
        default=None, description="One choice only"
    )
    response_format: dict[str, Any] | None = Field(
        default=None, description='Only `{"type": "text"}`'
    )
    logprobs: bool | None = Field(default=None, description="Not available: false or absent")
    # ragstream's extensions: the per-request options of /api/chat.
    top_k: TopK | None = Field(default=None, description="ragstream extension")
    retrieval: RetrievalMode | None = Field(default=None, description="ragstream extension")
    reranking: RerankingMethod | None = Field(
        default=None,
        description=f"ragstream extension; `llm` needs a generative model: {NEEDS_GENERATOR}",
    )
    hyde: bool | None = Field(
        default=None,
        description=f"ragstream extension; `true` needs a generative model: {NEEDS_GENERATOR}",
    )
    compression: bool | None = Field(default=None, description="ragstream extension")
    document_ids: list[UUID] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="ragstream extension: search only these documents",
    )
    filters: Filters | None = Field(
        default=None,
        description="ragstream extension: search only the caller's documents with these tags"
        " (any/all), metadata, file name, content type or upload time (it only narrows)",
    )
    conversation_id: UUID | None = Field(
        default=None,
        description="ragstream extension: file the exchange under this conversation in"
        " /api/chat/history (the context is always `messages`)",
    )


class Usage(BaseModel):
    """Approximate: about four characters a token (docs/openai.md)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = Field(description="The model the request named")
    choices: list[Choice]
    usage: Usage
    system_fingerprint: None = None
    sources: list[Source] = Field(
        description="ragstream extension: the passages the answer was given, numbered [n], as"
        " /api/chat gives them"
    )
    cited: list[int] = Field(description="ragstream extension: the source numbers cited")
    grounded: bool = Field(
        description="ragstream extension: false when the documents do not answer the"
        " question (nothing is cited; the sources are only the closest passages)"
    )
    conversation_id: UUID = Field(description="ragstream extension")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = MODEL_CREATED
    owned_by: str = "ragstream"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """OpenAI's error shape, which its SDKs turn into exceptions."""

    error: ErrorDetail
