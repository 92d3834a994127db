"""The web page resumes an answer whose connection dropped: in a real
headless Chromium against the session's real gateway and workers, the chat's
response is cut short mid-event (the browser gets the first events and half
of the next, then the end of the body), and the page asks for the rest
itself (GET /api/chat/stream/{X-Stream-ID} with Last-Event-ID) and shows
the whole answer, each word once."""

from __future__ import annotations

import json

import httpx
from playwright.async_api import Request, Route, expect

from tests.browser.conftest import Watched
from tests.browser.test_web_chat import ANSWER_MS, INDEXING_MS, POLICY, ask, sign_in, upload
from tests.support.api import User, parse_sse, stream_chat


async def test_an_answer_whose_connection_drops_is_resumed_by_the_page(
    web: Watched, client: httpx.AsyncClient
) -> None:
    page = web.page
    user: User = await sign_in(page, client)
    row = await upload(page, "travel-policy.md", POLICY)
    await expect(row.locator(".status")).to_have_text("indexed", timeout=INDEXING_MS)
    question = "How many days do I have to submit travel expense claims?"
    _, whole = await stream_chat(client, user, {"message": question})
    expected = "".join(e.data["text"] for e in whole if e.event == "token")
    assert sum(e.event == "token" for e in whole) >= 2, whole

    cut: dict[str, str] = {}

    async def cut_short(route: Route) -> None:
        """The real answer, but only its first events and half of the next."""
        response = await route.fetch()
        body = await response.text()
        events = body.replace("\r\n", "\n").split("\n\n")
        shown = [e for e in events[:-1] if "\nid: " in f"\n{e}"][:2]
        rest = "\n\n".join(events[len(shown) :])
        cut["shown"] = "\n\n".join(shown)
        await route.fulfill(response=response, body=cut["shown"] + "\n\n" + rest[:12])

    resumes: list[Request] = []

    def on_request(request: Request) -> None:
        if "/api/chat/stream/" in request.url:
            resumes.append(request)

    page.on("request", on_request)
    await page.route("**/api/chat/stream", cut_short)
    answer = await ask(page, question)
    await expect(answer).to_have_attribute("data-state", "done", timeout=ANSWER_MS)

    text = await answer.locator(".answer-text").text_content() or ""
    assert text == expected, (text, expected)
    assert await answer.get_attribute("data-resumes") == "1"
    [resume] = resumes
    shown = parse_sse(cut["shown"])
    last_id = [line for line in cut["shown"].splitlines() if line.startswith("id: ")][-1][4:]
    assert resume.headers.get("last-event-id") == last_id
    assert "within 30 days" in text and web.errors == []
    print(
        f"\nthe page got {len(shown)} events and half of the next, then the body ended; it"
        f" resumed once (Last-Event-ID {last_id}) and showed the whole answer"
        f" ({len(json.dumps(text))} chars), each word once"
    )
