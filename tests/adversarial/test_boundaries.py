"""Numbers at and past the edges of what the stores can hold, in every
numeric query parameter of every GET route (read from /openapi.json): a 4xx
or an answer, never a 5xx. PostgreSQL's bigint ends at 2**63 - 1; a value
past it that reaches a query is an OverflowError inside asyncpg, a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.adversarial.conftest import registered
from tests.support.processes import Component

EDGES = [str(2**63 - 1), str(2**63), str(-(2**63) - 1), str(10**30), "1e309", "-0", "NaN"]


@pytest.fixture(scope="module")
async def spec(gateway: Component) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        loaded: dict[str, Any] = (await client.get("/openapi.json")).json()
    return loaded


def numeric_query_params(spec: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for path, ops in spec["paths"].items():
        params = ops.get("get", {}).get("parameters", [])
        for param in params:
            kinds = str(param.get("schema", {}))
            if param.get("in") == "query" and ("integer" in kinds or "number" in kinds):
                found.append((path, param["name"]))
    return found


async def test_huge_numbers_in_query_parameters_are_refused_not_crashed(
    client: httpx.AsyncClient, gateway: Component, spec: dict[str, Any]
) -> None:
    found = numeric_query_params(spec)
    assert ("/api/documents", "offset") in found, found
    actor = await registered(client, "edges")
    failures = []
    for path, name in found:
        for value in EDGES:
            # A connection of its own each time: a 500 may close the connection.
            async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as http:
                response = await http.get(path, params={name: value}, headers=actor.headers)
            if response.status_code >= 500:
                failures.append(f"GET {path}?{name}={value}: {response.status_code}")
    assert not failures, "\n".join(failures)
