"""Two gateway replicas at once: each reads only its own streams' replies."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import answer_text, new_user, stream_chat, upload, wait_for_status
from tests.support.processes import Component, start_gateway

FACTS = [
    ("falcon", "The falcon project ships in March."),
    ("otter", "The otter project is owned by the Lisbon office."),
    ("walrus", "The walrus project budget is 7 million."),
    ("heron", "The heron project uses Rust for its parser."),
]


@pytest.fixture(scope="module")
def second_gateway(
    app_env: dict[str, str], log_dir: Path, gateway: Component
) -> Iterator[Component]:
    other = start_gateway("gateway-b", app_env, log_dir)
    yield other
    other.stop()


def _reply_partition(gateway: Component) -> int:
    for line in gateway.log().splitlines():
        if '"Gateway started"' in line:
            return int(json.loads(line)["reply_partition"])
    raise AssertionError("no start line")


async def _unclaimed(client: httpx.AsyncClient) -> float:
    metrics = (await client.get("/metrics")).text
    match = re.search(r"^rag_gateway_unclaimed_replies_total (\S+)$", metrics, re.M)
    return float(match.group(1)) if match else 0.0


async def test_concurrent_streams_on_two_gateways_do_not_cross(
    gateway: Component, second_gateway: Component
) -> None:
    assert _reply_partition(gateway) != _reply_partition(second_gateway)
    async with (
        httpx.AsyncClient(base_url=gateway.base_url or "", timeout=60) as a,
        httpx.AsyncClient(base_url=second_gateway.base_url or "", timeout=60) as b,
    ):
        clients = [a, b, a, b]
        users = [await new_user(a, name) for name, _ in FACTS]
        for user, (name, fact) in zip(users, FACTS, strict=True):
            doc = await upload(a, user, f"{name}.txt", fact.encode())
            assert (await wait_for_status(a, user, doc))["status"] == "indexed"
        before = [await _unclaimed(a), await _unclaimed(b)]

        async def ask(i: int) -> tuple[int, str]:
            name, _ = FACTS[i % 4]
            response, events = await stream_chat(
                clients[i % 4], users[i % 4], {"message": f"Tell me about the {name} project"}
            )
            assert response.status_code == 200
            assert [e.event for e in events].count("done") == 1, events
            return i, answer_text(events)

        answers = await asyncio.gather(*(ask(i) for i in range(16)))
        after = [await _unclaimed(a), await _unclaimed(b)]

    for i, answer in answers:
        name, fact = FACTS[i % 4]
        assert fact in answer, (name, answer)
        assert all(other not in answer for other, _ in FACTS if other != name)
    assert after == before, "a gateway read replies that were not for its streams"
