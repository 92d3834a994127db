"""An OpenAI-compatible API over the same chat: ``/v1/chat/completions``
(whole or streamed) and ``/v1/models``, for the openai SDKs, LangChain's
ChatOpenAI, Open WebUI and anything else that speaks OpenAI's wire format.

A completion is a chat as ``gateway.routes.chat``'s, opened and carried by
``gateway.streams.chat_stream`` (same request on Kafka, same relay, same
stream slot and limits); only the shapes differ. The question is the last
user message; the earlier user and assistant messages travel with the
request as its history, since OpenAI clients keep the conversation
themselves. See docs/openai.md."""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any
from uuid import uuid4

import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from gateway.http.deps import CurrentUser, GatewayDep, RequestId, json_body
from gateway.http.errors import DEPENDENCY_ERRORS, UNAVAILABLE_RETRY_AFTER, status_for
from gateway.http.openapi import SIGNED_IN, Documented, Responses, errors, json_body_schema
from gateway.models import ChatAnswer, ChatBody
from gateway.openai_models import (
    MODEL_ID,
    AssistantMessage,
    ChatCompletion,
    ChatMessage,
    Choice,
    CompletionRequest,
    ErrorBody,
    ErrorDetail,
    ModelCard,
    ModelList,
    Usage,
)
from gateway.streams.chat_stream import collect, open_chat, relay_response
from gateway.streams.inbox import AttemptReset
from gateway.streams.relay import RelayEvent, StreamEnded, StreamTimeout
from gateway.streams.sse import RelayResponse
from shared.config import Settings
from shared.contracts.events import DoneReply, ErrorReply, Source, Turn
from shared.errors import (
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    RagError,
    TooManyRequests,
    Unavailable,
)

log = structlog.get_logger(__name__)

INTERRUPTED = "the answer was interrupted (the worker writing it was lost); please ask again"
# OpenAI's error types, by HTTP status; ``code`` is ragstream's error code.
ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
    503: "server_error",
    504: "timeout",
}
TURN_CHARS = 8000  # shared.contracts.events.Turn.content


class ModelNotFound(NotFound):
    code = "model_not_found"


def error_response(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    body = ErrorBody(error=ErrorDetail(message=message, type=kind, param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status)


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    """400 (OpenAI's status for a bad body, not FastAPI's 422), naming the
    fields; values are never echoed back."""
    errors = list(exc.errors())
    where = [".".join(str(p) for p in e["loc"] if p != "body") or "body" for e in errors]
    message = "; ".join(f"{w}: {e['msg']}" for w, e in zip(where, errors, strict=True))
    return error_response(400, message, "invalid_input", where[0] if where else None)


def _rag_error(request: Request, exc: RagError) -> JSONResponse:
    status = status_for(exc)
    response = error_response(status, exc.message, exc.code)
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
        log.warning(exc.message, path=request.url.path)
    if isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after)
    elif status == 503:
        response.headers["Retry-After"] = UNAVAILABLE_RETRY_AFTER
    return response


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class OpenAIRoute(APIRoute):
    """A route whose errors (auth, limits and validation included: they are
    raised by its dependencies) come in OpenAI's shape, which OpenAI clients
    read, instead of ``{"detail": ...}``. Statuses are gateway.http.errors'."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def openai_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except RagError as exc:
                return _rag_error(request, exc)
            except RequestValidationError as exc:
                return _validation_error(exc)
            except HTTPException as exc:
                return error_response(exc.status_code, str(exc.detail), "http_error")
            except DEPENDENCY_ERRORS as exc:
                log.error("Dependency unavailable", error=f"{type(exc).__name__}: {exc}")
                response = error_response(
                    503,
                    "a service this request needs is unavailable; try again shortly",
                    "unavailable",
                )
                response.headers["Retry-After"] = UNAVAILABLE_RETRY_AFTER
                return response

        return openai_errors


# An event of a streamed completion, as OpenAI streams them: no event name.
_CHUNK_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "description": "A `chat.completion.chunk` as JSON (the last with `finish_reason`"
            " and ragstream's `sources`, `cited`, `grounded`, `conversation_id`), then"
            ' `[DONE]`; a failed stream sends `{"error": {…}}` before `[DONE]`',
        }
    },
}


def _errors(*documented: Documented) -> Responses:
    """OpenAPI for these error answers, in OpenAI's shape."""
    return errors(*documented, body=ErrorBody)


router = APIRouter(
    prefix="/v1", tags=["openai"], route_class=OpenAIRoute, responses=_errors(*SIGNED_IN)
)
Body = Annotated[CompletionRequest, Depends(json_body(CompletionRequest))]


@router.get("/models", response_model=ModelList)
async def list_models(user: CurrentUser) -> ModelList:
    return ModelList(data=[ModelCard(id=MODEL_ID)])


@router.get(
    "/models/{model_id}",
    response_model=ModelCard,
    responses=_errors(*SIGNED_IN, (ModelNotFound, "No such model")),
)
async def get_model(user: CurrentUser, model_id: str) -> ModelCard:
    check_model(model_id)
    return ModelCard(id=MODEL_ID)


def check_model(model: str) -> None:
    if model != MODEL_ID:
        # Not an alias for anything: a typo should not quietly get ragstream.
        raise ModelNotFound(f"the model does not exist; this server serves {MODEL_ID!r}")


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    # With its 413, refused before the body is read: in ErrorOut's shape.
    openapi_extra=json_body_schema(CompletionRequest),
    responses={
        200: {
            "content": {"text/event-stream": {"itemSchema": _CHUNK_EVENT}},
            "description": "A chat.completion, or with `stream` chat.completion.chunk SSE",
        },
        **_errors(
            *SIGNED_IN,
            (InvalidInput, "Not a request this server answers; `message` says why"),
            (ModelNotFound, "No such model (`model_not_found`)"),
            (TooManyRequests, "MAX_CONCURRENT_STREAMS chats of the user's are running"),
            (Unavailable, "The answer failed"),
            (DeadlineExceeded, "No answer within STREAM_TIMEOUT"),
        ),
    },
)
async def chat_completions(
    gateway: GatewayDep, user: CurrentUser, request_id: RequestId, body: Body
) -> ChatCompletion | RelayResponse:
    check_model(body.model)
    check_unsupported(body)
    chat_body, history = to_chat(body, gateway.clients.settings)
    chat = await open_chat(gateway, user, request_id, chat_body, history)
    reply = Completion.start(body.model, [*(t.content for t in history), chat_body.message])
    if body.stream:
        usage_chunk = body.stream_options is not None and body.stream_options.include_usage
        render = partial(chunks, reply, usage_chunk=usage_chunk)
        return relay_response(gateway, chat, render, sep="\n")
    return reply.whole(await collect(chat))


def check_unsupported(body: CompletionRequest) -> None:
    """Refuse what would silently not happen and break the caller."""
    if body.response_format and body.response_format.get("type", "text") != "text":
        raise InvalidInput("response_format: only text answers are available")
    if body.logprobs:
        raise InvalidInput("logprobs: not available")


def to_chat(body: CompletionRequest, settings: Settings) -> tuple[ChatBody, list[Turn]]:
    """The /api/chat request that asks the last user message, and the
    conversation before it (as much as MEMORY_TURNS uses)."""
    *earlier, last = body.messages
    index = len(body.messages) - 1
    if last.role != "user":
        raise InvalidInput(f"messages[{index}]: the last message must be the user's question")
    options = body.model_dump(
        include={"top_k", "retrieval", "reranking", "hyde", "compression", "document_ids"}
    )
    try:
        chat = ChatBody(
            message=text_of(last, index),
            conversation_id=body.conversation_id,
            filters=body.filters,
            **options,
        )
    except ValidationError as exc:
        reason = exc.errors(include_input=False)[0]["msg"]
        raise InvalidInput(f"messages[{index}].content: {reason}") from None
    return chat, history(earlier, settings.memory_turns)


def history(messages: list[ChatMessage], memory_turns: int) -> list[Turn]:
    turns: list[Turn] = []
    for index, message in enumerate(messages):
        if message.role in ("tool", "function"):
            raise InvalidInput(f"messages[{index}]: tool messages are not supported")
        text = text_of(message, index).strip()
        if message.role in ("user", "assistant") and text:
            turns.append(Turn(role=message.role, content=text[:TURN_CHARS]))
    return turns[-2 * memory_turns :] if memory_turns else []


def text_of(message: ChatMessage, index: int) -> str:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    if any(part.type != "text" or part.text is None for part in message.content):
        raise InvalidInput(f"messages[{index}].content: only text parts are supported")
    return "\n".join(part.text or "" for part in message.content)


def approx_tokens(text: str) -> int:
    """About four characters a token, OpenAI's rule of thumb for English."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class Completion:
    """What the whole answer and every chunk of a streamed one share."""

    id: str
    model: str
    created: int
    prompt_tokens: int

    @classmethod
    def start(cls, model: str, prompt: list[str]) -> Completion:
        prompt_tokens = sum(approx_tokens(text) for text in prompt)
        return cls(f"chatcmpl-{uuid4().hex}", model, int(time.time()), prompt_tokens)

    def usage(self, answer: str) -> Usage:
        completion = approx_tokens(answer)
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion,
            total_tokens=self.prompt_tokens + completion,
        )

    def whole(self, answer: ChatAnswer) -> ChatCompletion:
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[Choice(message=AssistantMessage(content=answer.answer))],
            usage=self.usage(answer.answer),
            sources=answer.sources,
            cited=answer.cited,
            grounded=answer.grounded,
            conversation_id=answer.conversation_id,
        )

    def chunk(self, delta: dict[str, str], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._chunk(choices=[choice], **extra)

    def _chunk(self, **fields: Any) -> str:
        head = {"id": self.id, "object": "chat.completion.chunk", "created": self.created}
        return json.dumps({**head, "model": self.model, "system_fingerprint": None, **fields})


async def chunks(
    reply: Completion, events: AsyncIterator[RelayEvent], *, usage_chunk: bool
) -> AsyncGenerator[dict[str, str], None]:
    """The relay's events as OpenAI's stream: a first chunk with the role,
    one per token, a last one with ``finish_reason`` (and the sources), then
    ``[DONE]``. A failure ends it with an ``error`` message, as OpenAI's
    streams do (its SDKs raise it), then ``[DONE]``: never a hang."""
    yield {"data": reply.chunk({"role": "assistant", "content": ""})}
    words: list[str] = []
    sources: list[Source] = []
    async for event in events:
        if isinstance(event, AttemptReset):
            if not words:
                continue  # nothing of the lost attempt was shown: go on seamlessly
            # An OpenAI stream cannot take back what it sent: no splice.
            yield {"data": _stream_error(event)}
            break
        if isinstance(event, StreamTimeout | StreamEnded | ErrorReply):
            yield {"data": _stream_error(event)}
            break
        if event.type == "token":
            words.append(event.text)
            yield {"data": reply.chunk({"content": event.text})}
        elif event.type == "sources":
            sources = event.sources
        elif isinstance(event, DoneReply):
            for data in _last_chunks(reply, "".join(words), sources, event, usage_chunk):
                yield {"data": data}
    yield {"data": "[DONE]"}


def _last_chunks(
    reply: Completion, answer: str, sources: list[Source], done: DoneReply, usage_chunk: bool
) -> list[str]:
    """The finishing chunk, with the extensions; usage on it, or (as OpenAI
    does when asked with ``stream_options.include_usage``) on a chunk of its
    own after it. Either way exactly one chunk holds usage: clients add up."""
    usage = reply.usage(answer).model_dump()
    finish = reply.chunk(
        {},
        "stop",
        sources=[s.model_dump(mode="json") for s in sources],
        cited=done.cited,
        grounded=done.grounded,
        conversation_id=str(done.conversation_id),
        **({} if usage_chunk else {"usage": usage}),
    )
    return [finish, reply._chunk(choices=[], usage=usage)] if usage_chunk else [finish]


def _stream_error(event: StreamTimeout | StreamEnded | ErrorReply | AttemptReset) -> str:
    """The codes and messages of the same failures of a whole answer."""
    if isinstance(event, StreamTimeout):
        message, kind, code = f"no answer for {event.seconds:g} seconds", "timeout", "timeout"
    elif isinstance(event, AttemptReset):
        message, kind, code = INTERRUPTED, "server_error", "interrupted"
    else:
        message, kind, code = event.message, "server_error", "unavailable"
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})
