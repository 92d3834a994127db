"""Numbers at and past the edges of what the stores can hold, in every
numeric query parameter of every GET route (read from /openapi.json).
PostgreSQL's bigint ends at 2**63 - 1; a value past it that reaches a query
is an OverflowError inside asyncpg, a 500. Every value the parameter's
declared bounds exclude (all those past bigint among them) is refused with a
422 that names the parameter; a value within them is answered (200)."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from tests.support.api import new_user
from tests.support.processes import Component

EDGES = [str(2**63 - 1), str(2**63), str(-(2**63) - 1), str(10**30), "1e309", "-0", "NaN"]


@pytest.fixture(scope="module")
async def spec(gateway: Component) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        loaded: dict[str, Any] = (await client.get("/openapi.json")).json()
    return loaded


def _numeric_schemas(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(path, name) of each numeric query parameter: its numeric schema."""
    found = {}
    for path, ops in spec["paths"].items():
        params = ops.get("get", {}).get("parameters", [])
        for param in params:
            schema = param.get("schema", {})
            numeric = [
                s
                for s in [schema, *schema.get("anyOf", [])]
                if s.get("type") in ("integer", "number")
            ]
            if param.get("in") == "query" and numeric:
                found[(path, param["name"])] = numeric[0]
    return found


def accepted(schema: dict[str, Any], value: str) -> bool:
    """Whether ``value`` is a number the schema allows (as the gateway parses it)."""
    try:
        number = int(value) if schema["type"] == "integer" else float(value)
    except ValueError:
        return False
    if isinstance(number, float) and not math.isfinite(number):
        return False
    low, high = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
    return bool(low <= number <= high)


async def test_huge_numbers_in_query_parameters_are_refused_not_crashed(
    client: httpx.AsyncClient, gateway: Component, spec: dict[str, Any]
) -> None:
    found = _numeric_schemas(spec)
    assert ("/api/documents", "offset") in found, found
    # Every integer is bounded within bigint: nothing past it is let through.
    for schema in found.values():
        if schema["type"] == "integer":
            assert schema.get("minimum", -math.inf) >= -(2**63), schema
            assert schema.get("maximum", math.inf) <= 2**63 - 1, schema
    actor = await new_user(client, "edges")  # the admin of a tenant: every route answers
    failures = []
    for (path, name), schema in found.items():
        for value in EDGES:
            # A connection of its own each time: a 500 may close the connection.
            async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as http:
                response = await http.get(path, params={name: value}, headers=actor.headers)
            if accepted(schema, value):
                if response.status_code != 200:
                    failures.append(f"GET {path}?{name}={value}: {response.status_code}, not 200")
            elif response.status_code != 422 or name not in response.text:
                failures.append(
                    f"GET {path}?{name}={value}: {response.status_code} {response.text[:200]},"
                    " not a 422 naming the parameter"
                )
    assert not failures, "\n".join(failures)
