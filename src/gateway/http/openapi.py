"""What /openapi.json says beyond FastAPI's own reading of the routes.

Error answers: a route names the kinds of ``shared.errors`` it (or a
dependency of it) raises, and ``errors()`` gives each its status from
``gateway.http.errors.STATUS``, the table the exception handlers answer
with, and the body those handlers send; the two cannot drift. Request bodies
that a dependency reads (``json_body``), which FastAPI cannot see. Links
between operations (an upload's id to the document's routes), which generated
clients and stateful testing follow."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import validation_error_definition, validation_error_response_definition
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter

from gateway.http.errors import status_of
from gateway.models import ErrorOut
from shared.errors import (
    AuthError,
    PayloadTooLarge,
    RagError,
    TooManyRequests,
    Unavailable,
)

Responses = dict[int | str, dict[str, Any]]
# An error kind, or one with what it means at this route.
Documented = type[RagError] | tuple[type[RagError], str]

# What each kind means wherever it is raised; a route may say more.
_MEANING: dict[type[RagError], str] = {
    AuthError: "No valid credential (access token or API key)",
    TooManyRequests: "A rate or concurrency limit; `Retry-After` says when to retry",
    Unavailable: "Restarting, or a service the request needs is down; retry after `Retry-After`",
    PayloadTooLarge: "The request body is over its limit",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
    503: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
}
# Every route that needs a credential: it may be missing or refused, its
# check counted against the caller's limits, and checked in PostgreSQL.
SIGNED_IN: tuple[Documented, ...] = (AuthError, TooManyRequests, Unavailable)
VALIDATION_REF = "#/components/schemas/HTTPValidationError"
# The 422 FastAPI answers a body its model refuses with (``json_body`` raises
# its RequestValidationError): the schema FastAPI gives its own 422s.
_INVALID_BODY: Responses = {
    422: {
        "description": "The body is not what the schema says (each problem located)",
        "content": {"application/json": {"schema": {"$ref": VALIDATION_REF}}},
    }
}


def errors(*documented: Documented, body: type[BaseModel] = ErrorOut) -> Responses:
    """OpenAPI ``responses`` for these error kinds: each kind's status, with
    ``body`` (the one error shape; ``/v1`` passes OpenAI's), its headers and
    what it means here. Kinds that share a status share an entry."""
    out: Responses = {}
    for item in documented:
        kind, meaning = item if isinstance(item, tuple) else (item, _MEANING.get(item, ""))
        status = status_of(kind)
        entry = out.setdefault(status, {"model": body, "description": ""})
        entry["description"] = ". ".join(filter(None, (entry["description"], meaning)))
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
    for entry in out.values():
        entry["description"] = entry["description"] or "See `detail`"
    return out


# The models of the bodies ``json_body_schema`` describes, by name: their
# schemas go into the document's components, where clients find them once.
_BODIES: dict[str, type[BaseModel]] = {}
# The schemas of the events ``event_stream`` describes, and of what is in them.
_EVENTS: dict[str, dict[str, Any]] = {}
REF_TEMPLATE = "#/components/schemas/{model}"


def json_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a body read by ``gateway.http.deps.json_body``
    (FastAPI cannot see it): the body's schema, and its refusals (too large,
    or not what the schema says)."""
    _BODIES[model.__name__] = model
    schema = {"$ref": REF_TEMPLATE.format(model=model.__name__)}
    responses = _oas(errors(PayloadTooLarge)) | _INVALID_BODY
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "responses": {str(status): entry for status, entry in responses.items()},
    }


def event_stream(description: str, **events: Any) -> dict[str, Any]:
    """A 200 answer that is a stream of Server-Sent Events: each ``event:``
    name with the schema of its ``data:`` (a model, or a type of models),
    as ``itemSchema``, the way FastAPI describes its own event streams and
    OpenAPI 3.2 specifies them."""
    return {
        "description": description,
        "content": {
            "text/event-stream": {
                "itemSchema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["event", "data"],
                            "properties": {
                                "event": {"const": name},
                                "data": {
                                    "type": "string",
                                    "contentMediaType": "application/json",
                                    "contentSchema": _payload_schema(payload),
                                },
                                "id": {"type": "string"},
                                "retry": {"type": "integer", "minimum": 0},
                            },
                        }
                        for name, payload in events.items()
                    ]
                }
            }
        },
    }


def _payload_schema(payload: Any) -> dict[str, Any]:
    """The schema of an event's data; the models in it become components."""
    schema = TypeAdapter(payload).json_schema(mode="serialization", ref_template=REF_TEMPLATE)
    for name, definition in schema.pop("$defs", {}).items():
        _EVENTS[name] = definition
    if isinstance(payload, type) and issubclass(payload, BaseModel):
        _EVENTS[payload.__name__] = schema
        return {"$ref": REF_TEMPLATE.format(model=payload.__name__)}
    return schema


def _components() -> dict[str, dict[str, Any]]:
    """The components ``json_body_schema`` and ``event_stream`` refer to."""
    out = dict(_EVENTS)
    for name, model in _BODIES.items():
        schema = model.model_json_schema(ref_template=REF_TEMPLATE)
        out |= schema.pop("$defs", {})
        out[name] = schema
    return out


def _oas(responses: Responses) -> Responses:
    """``responses`` as they appear in the document (a model as its schema),
    for ``openapi_extra``, which FastAPI copies as it is."""
    out: Responses = {}
    for status, entry in responses.items():
        entry = dict(entry)
        model = entry.pop("model", None)
        if model is not None:
            ref = REF_TEMPLATE.format(model=model.__name__)
            entry["content"] = {"application/json": {"schema": {"$ref": ref}}}
        out[status] = entry
    return out


def link(operation_id: str, description: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link to ``operation_id``, its parameters taken from this
    response (runtime expressions such as ``$response.body#/id``)."""
    return {"operationId": operation_id, "parameters": parameters, "description": description}


def operation_id(route: APIRoute) -> str:
    """The route function's name: short, stable ids for generated clients
    (``upload``, ``get_document``) and for links to name."""
    return route.name


def install(app: FastAPI, *, without_422: str) -> None:
    """Build the document once with FastAPI, then correct what FastAPI
    cannot be told: the 422 it adds to every route with parameters, which
    the routes under the prefix ``without_422`` never answer (``/v1``
    answers 400), and the schemas when only ``openapi_extra`` refers to them."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for path, operations in document["paths"].items():
            if path.startswith(without_422):
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("ValidationError", validation_error_definition)
        schemas.setdefault("HTTPValidationError", validation_error_response_definition)
        schemas.setdefault("ErrorOut", ErrorOut.model_json_schema())
        for name, schema in _components().items():
            # One model, one name: a model FastAPI also describes (a response's)
            # keeps FastAPI's schema, which has the same properties.
            if set(schemas.setdefault(name, schema).get("properties", {})) != set(
                schema.get("properties", {})
            ):
                raise ValueError(f"two schemas named {name} in /openapi.json")
        return document

    app.openapi = openapi  # type: ignore[method-assign]
