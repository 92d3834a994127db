"""Broken object-level authorisation (OWASP API1), tried on every route.

The routes come from the live /openapi.json, so a route added later is
attacked too without touching this file. A route that takes an id in its
path must answer another tenant's id exactly as it answers an id that does
not exist (404, or 405/422 where method or shape rule it out): never a
2xx, and never a 403 that says "it exists, but not for you"."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.adversarial.conftest import (
    GROUP_CODE,
    GROUP_NAME,
    SECRET,
    SECRET_CODE,
    SECRET_NUMBER,
    World,
    fresh_attacker,
)
from tests.support.api import User, member_of, new_user

Spec = dict[str, Any]
# Mutating methods last, so a route that wrongly obeys cannot hide a read leak.
METHOD_ORDER = ("get", "head", "post", "put", "patch", "delete")
OUTSIDER_ALLOWED = {404, 405, 422}
_PARAM = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: Spec

    def url(self, value: str) -> str:
        return _PARAM.sub(value, self.path)


@pytest.fixture(scope="module")
async def spec(world: World, gateway: Any) -> Spec:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client:
        loaded: Spec = (await client.get("/openapi.json")).json()
    return loaded


def operations(spec: Spec, *, with_path_ids: bool) -> list[Operation]:
    found = [
        Operation(method, path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if method in METHOD_ORDER and bool(_PARAM.search(path)) == with_path_ids
    ]
    return sorted(found, key=lambda o: (METHOD_ORDER.index(o.method), o.path))


def _resolve(schema: Spec, spec: Spec) -> Spec:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return _resolve(options[0], spec) if options else {"type": "null"}
    return schema


def minimal(schema: Spec, spec: Spec) -> Any:
    """The smallest value the schema allows, so a route gets past body
    validation to the id check instead of failing on the body first."""
    schema = _resolve(schema, spec)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: minimal(props[name], spec) for name in schema.get("required", [])}
    if kind == "array":
        return [minimal(schema.get("items", {}), spec)] * schema.get("minItems", 0)
    if kind == "string":
        if schema.get("format") == "uuid":
            return str(uuid.uuid4())
        return "x" * max(schema.get("minLength", 1), 8)
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    return True if kind == "boolean" else None


def request_kwargs(op: Operation, spec: Spec) -> dict[str, Any]:
    content = op.spec.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        return {"json": minimal(content["application/json"]["schema"], spec)}
    if "multipart/form-data" in content:
        return {"files": {"file": ("probe.txt", b"probe text", "text/plain")}}
    return {}


async def call(
    client: httpx.AsyncClient, actor: User, op: Operation, value: str, spec: Spec
) -> httpx.Response:
    return await client.request(
        op.method.upper(), op.url(value), headers=actor.headers, **request_kwargs(op, spec)
    )


async def test_the_spec_has_routes_with_ids(spec: Spec) -> None:
    """If the enumeration found nothing, the next test would prove nothing."""
    paths = {op.path for op in operations(spec, with_path_ids=True)}
    assert "/api/documents/{document_id}" in paths, paths


@pytest.mark.parametrize("attacker", ["outsider", "insider"])
async def test_no_route_reveals_or_touches_another_users_object(
    client: httpx.AsyncClient, world: World, spec: Spec, db: asyncpg.Pool, attacker: str
) -> None:
    actor = await fresh_attacker(client, db, world, attacker)
    failures: list[str] = []
    for op in operations(spec, with_path_ids=True):
        unknown = (await call(client, actor, op, str(uuid.uuid4()), spec)).status_code
        for kind, value in world.victim_ids.items():
            if attacker == "insider" and kind in ("tenant", "shared_document"):
                continue  # the insider's own tenant, and a document shared with them
            response = await call(client, actor, op, value, spec)
            status = response.status_code
            where = f"{op.method.upper()} {op.path} with the victim's {kind} id"
            if response.is_success or status >= 500:
                failures.append(f"{where}: {status} {response.text[:200]}")
            elif status != unknown:
                failures.append(f"{where}: {status}, but {unknown} for an unknown id")
            elif attacker == "outsider" and status not in OUTSIDER_ALLOWED:
                failures.append(f"{where}: {status} {response.text[:200]}")
            if SECRET in response.text:
                failures.append(f"{where}: the response holds the victim's secret")
    assert not failures, "\n".join(failures)


async def test_the_victims_objects_survive_the_attack(
    client: httpx.AsyncClient, world: World
) -> None:
    """Run after the attacks (file order): nothing the attackers sent with
    the victim's ids deleted, disabled or changed anything of theirs."""
    victim = world.victim
    doc = await client.get(f"/api/documents/{world.document_id}", headers=victim.headers)
    assert doc.status_code == 200, doc.text
    assert (await client.get("/api/auth/verify", headers=victim.headers)).status_code == 200
    history = await client.get(
        "/api/chat/history",
        params={"conversation_id": world.conversation_id},
        headers=victim.headers,
    )
    assert history.status_code == 200 and history.json(), history.text
    if "api_key" in world.victim_ids:
        keys = (await client.get("/api/keys", headers=victim.headers)).json()
        [key] = [k for k in keys if k["id"] == world.victim_ids["api_key"]]
        assert key["revoked_at"] is None, key


def _query_ids(op: Operation, world: World) -> dict[str, str]:
    """The victim's ids for every query parameter that takes an id."""
    params: dict[str, str] = {}
    for param in op.spec.get("parameters", []):
        if param.get("in") != "query":
            continue
        schema = str(param.get("schema", {}))
        name = param["name"]
        if "uuid" in schema or name.endswith("_id"):
            stem = name.removesuffix("s").removesuffix("_id")
            params[name] = world.victim_ids.get(stem, world.document_id)
    return params


def _streams(op: Operation) -> bool:
    """An event stream, which never ends by itself: read whole, it would hang
    the test. (Its own tests check whose events it carries:
    tests/e2e/test_document_events.py.)"""
    success = op.spec.get("responses", {}).get("200", {})
    return list(success.get("content", {})) == ["text/event-stream"]


async def test_no_listing_shows_another_users_objects(
    client: httpx.AsyncClient, world: World, spec: Spec, db: asyncpg.Pool
) -> None:
    """Every GET without a path id (lists, history, audit, admin views),
    with the victim's ids in any id-taking query parameter: no 5xx, and no
    trace of the victim's document, conversation or secret in a success.
    Fresh attackers: nothing they typed themselves can look like a leak."""
    attackers = {
        "outsider": await new_user(client, "lister"),
        "insider": await member_of(client, db, world.victim.tenant_id, "lister"),
    }
    private = (
        world.document_id,
        world.conversation_id,
        SECRET_CODE,
        SECRET_NUMBER,
        "vault.txt",
        # The victim's group and the document shared with it (only the victim is in it).
        world.group_id,
        world.group_document_id,
        GROUP_CODE,
        GROUP_NAME,
        "strongroom.txt",
    )
    failures: list[str] = []
    for name, actor in attackers.items():
        for op in operations(spec, with_path_ids=False):
            if op.method != "get" or not op.path.startswith("/api/") or _streams(op):
                continue
            for params in ({}, _query_ids(op, world)):
                response = await client.get(op.path, params=params, headers=actor.headers)
                where = f"{name}: GET {op.path} {params}"
                if response.status_code >= 500:
                    failures.append(f"{where}: {response.status_code}")
                if response.is_success and any(p in response.text for p in private):
                    failures.append(f"{where} shows the victim's data: {response.text[:300]}")
    assert not failures, "\n".join(failures)
