"""Streams are keyed by an id the server chooses: a client's X-Request-ID is
only logged, so two requests that share one never see each other's answer."""

from __future__ import annotations

import asyncio

import httpx

from tests.support.api import answer_text, new_user, parse_sse, upload, wait_for_status

DOCS = {
    "tea.md": b"# Tea\n\nGreen tea is steeped at 80 degrees for two minutes.\n",
    "bikes.md": b"# Bikes\n\nBicycle tyres are inflated to 4 bar on city bikes.\n",
}
QUESTIONS = {
    "tea.md": "At what temperature is green tea steeped?",
    "bikes.md": "How much pressure for bicycle tyres?",
}


async def test_two_requests_with_one_request_id_each_get_their_own_answer(
    client: httpx.AsyncClient,
) -> None:
    alice, bob = await new_user(client, "alice"), await new_user(client, "bob")
    owners = {"tea.md": alice, "bikes.md": bob}
    for name, user in owners.items():
        doc_id = await upload(client, user, name, DOCS[name])
        assert (await wait_for_status(client, user, doc_id))["status"] == "indexed"

    async def ask(name: str) -> tuple[str, list[str]]:
        user = owners[name]
        headers = {**user.headers, "X-Request-ID": "shared-request-id"}
        async with client.stream(
            "POST", "/api/chat/stream", headers=headers, json={"message": QUESTIONS[name]}
        ) as response:
            assert response.status_code == 200
            assert response.headers["x-request-id"] == "shared-request-id"
            events = parse_sse((await response.aread()).decode())
        [sources] = [e.data for e in events if e.event == "sources"]
        assert events[-1].event == "done"
        return answer_text(events), [s["filename"] for s in sources]

    for _ in range(3):
        (tea, tea_sources), (bikes, bike_sources) = await asyncio.gather(
            ask("tea.md"), ask("bikes.md")
        )
        assert "80 degrees" in tea and "bar" not in tea
        assert "4 bar" in bikes and "degrees" not in bikes
        assert tea_sources == ["tea.md"] and bike_sources == ["bikes.md"]
