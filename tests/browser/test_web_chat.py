"""The web chat page at /, driven in a real headless Chromium against the
session's real gateway and workers: sign in, upload, live status, a streamed
answer with clickable citations, a question the documents do not answer
(shown as not found, its closest passages readable but not cited), the error
states, and markup in documents shown as text."""

from __future__ import annotations

import json
import re
import time
import uuid

import httpx
from playwright.async_api import FilePayload, Locator, Page, Route, expect

from tests.browser.conftest import ARTIFACTS, Watched
from tests.support.api import PASSWORD, User, new_user

POLICY = b"""# Travel policy

Employees must submit travel expense claims within 30 days of returning.
Meals are reimbursed up to 45 euros per day. Hotel rooms are booked by the travel desk.

## Equipment

Every engineer receives a laptop on the first day. Monitors are ordered through the IT portal.
"""
INDEXING_MS = 60_000
ANSWER_MS = 30_000


async def sign_in(page: Page, client: httpx.AsyncClient) -> User:
    user = await new_user(client, "web")
    await page.goto("/")
    await page.fill("#username", user.username)
    await page.fill("#password", PASSWORD)
    await page.click("#signin-submit")
    await expect(page.locator("#app-view")).to_be_visible()
    await expect(page.locator("#whoami")).to_have_text(user.username)
    return user


async def upload(page: Page, name: str, content: bytes) -> Locator:
    """Through the page's file input; the document's row in the list."""
    payload: FilePayload = {"name": name, "mimeType": "text/plain", "buffer": content}
    await page.set_input_files("#file-input", files=[payload])
    await expect(page.locator("#upload-status")).to_have_text(f"Uploaded {name}")
    return page.locator("#document-list li").filter(has=page.locator(".filename", has_text=name))


async def ask(page: Page, question: str) -> Locator:
    await page.fill("#question", question)
    await page.click("#ask")
    return page.locator("#messages li.answer").last


# Every length the newest answer's text has had, as the page drew it.
RECORD_LENGTHS = """() => {
  window.answerLengths = [];
  new MutationObserver(() => {
    const answers = document.querySelectorAll("#messages .answer .answer-text");
    if (answers.length) window.answerLengths.push(answers[answers.length - 1].textContent.length);
  }).observe(document.getElementById("messages"),
             {childList: true, subtree: true, characterData: true});
}"""


async def test_sign_in_upload_watch_ask_and_open_a_citation(
    web: Watched, client: httpx.AsyncClient
) -> None:
    page = web.page
    await sign_in(page, client)
    started = time.monotonic()
    row = await upload(page, "travel-policy.md", POLICY)
    await expect(page.locator("#upload-progress")).to_have_js_property("value", 100)
    await expect(row.locator(".status")).to_have_text("indexed", timeout=INDEXING_MS)
    indexed_after = time.monotonic() - started
    await expect(row.locator(".detail")).to_have_text(re.compile(r"^[1-9]\d* passages$"))
    # Nothing polled: the status came over GET /api/documents/events.
    await expect(page.locator("#live-mode")).to_have_text("Live status")

    await page.evaluate(RECORD_LENGTHS)
    started = time.monotonic()
    answer = await ask(page, "How many days do I have to submit travel expense claims?")
    await expect(answer).to_have_attribute("data-state", "done", timeout=ANSWER_MS)
    answered_after = time.monotonic() - started
    text = await answer.locator(".answer-text").text_content() or ""
    assert "within 30 days" in text
    tokens = int(await answer.get_attribute("data-tokens") or 0)
    lengths: list[int] = await page.evaluate("window.answerLengths")
    grown = sorted(set(lengths))
    # Drawn as it streamed: several token events, the text seen at several
    # lengths, never shrinking, ending with the whole answer.
    assert tokens >= 2, tokens
    assert len([n for n in grown if n > 0]) >= 2, lengths
    assert lengths == sorted(lengths) and lengths[-1] == len(text)
    # Answered from the documents: not the not-found state.
    await expect(answer).to_have_attribute("data-grounded", "true")
    await expect(answer).not_to_have_class(re.compile(r"\bnot-found\b"))
    await expect(answer.locator(".not-found-label")).to_have_count(0)
    await expect(answer.locator(".sources-heading")).to_have_count(0)

    citation = answer.locator(".answer-text button.citation").first
    await expect(citation).to_have_text("[1]")
    await citation.click()
    dialog = page.locator("#source-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#source-title")).to_have_text("[1] travel-policy.md")
    await expect(page.locator("#source-where")).to_contain_text("Travel policy")
    await expect(page.locator("#source-text")).to_contain_text("within 30 days of returning")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "web-chat.png"
    await page.screenshot(path=shot, full_page=True)
    print(f"\nscreenshot: {shot}")
    print(f"indexed after {indexed_after:.1f} s; answered after {answered_after:.1f} s")
    print(f"{tokens} token events; answer lengths drawn: {grown}")
    await page.click("#source-close")
    await expect(dialog).to_be_hidden()
    assert web.errors == [] and web.dialogs == []


NOT_FOUND = (
    "I could not find an answer to that in your documents. The closest passages are"
    " listed as sources, but none of them answers it."
)


async def test_a_question_the_documents_do_not_answer_is_shown_as_not_found(
    web: Watched, client: httpx.AsyncClient
) -> None:
    page = web.page
    await sign_in(page, client)
    # Tags typed before the upload go with it, and show on the document.
    await page.fill("#upload-tags", "policy, expenses")
    row = await upload(page, "expense-policy.md", POLICY)
    await expect(row.locator(".status")).to_have_text("indexed", timeout=INDEXING_MS)
    await expect(row.locator(".tags")).to_have_text("#policy #expenses")

    answer = await ask(page, "What is the capital of France?")
    await expect(answer).to_have_attribute("data-state", "done", timeout=ANSWER_MS)
    await expect(answer).to_have_attribute("data-grounded", "false")
    await expect(answer).to_have_class(re.compile(r"\bnot-found\b"))
    label = answer.locator(".not-found-label")
    await expect(label).to_be_visible()
    await expect(label).to_have_text("Not found in your documents")
    await expect(answer.locator(".answer-text")).to_have_text(NOT_FOUND)
    # Nothing cited: no citation buttons, in the text or the list.
    await expect(answer.locator("button.citation")).to_have_count(0)

    # The closest passages, under their own heading, can still be read.
    await expect(answer.locator(".sources-heading")).to_have_text("Closest passages (not cited)")
    passages = answer.locator(".sources.closest button.passage")
    assert await passages.count() >= 1
    await expect(passages.first).to_have_text("expense-policy.md")
    await passages.first.click()
    dialog = page.locator("#source-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#source-title")).to_have_text(
        "Closest passage (not cited): expense-policy.md"
    )
    # A passage of the policy, whichever was closest.
    await expect(page.locator("#source-text")).to_contain_text(
        re.compile(r"expense claims|reimbursed|travel desk|laptop|IT portal")
    )

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "web-chat-not-found.png"
    await page.screenshot(path=shot, full_page=True)
    print(f"\nscreenshot: {shot}")
    await page.click("#source-close")
    await expect(dialog).to_be_hidden()
    assert web.errors == [] and web.dialogs == []


async def test_a_timeout_and_a_refused_upload_show_visible_errors(
    web: Watched, client: httpx.AsyncClient
) -> None:
    page = web.page
    await sign_in(page, client)
    await page.click("details:has(#stream-timeout) > summary")
    await page.fill("#stream-timeout", "0.001")
    answer = await ask(page, "Is anyone there?")
    await expect(answer).to_have_attribute("data-state", "timeout", timeout=ANSWER_MS)
    alert = answer.locator(".error[role=alert]")
    await expect(alert).to_be_visible()
    await expect(alert).to_have_text("No answer within 0.001 seconds; please ask again.")
    await expect(page.locator("#ask")).to_be_enabled()

    payload: FilePayload = {"name": "tool.exe", "mimeType": "text/plain", "buffer": b"MZ"}
    await page.set_input_files("#file-input", files=[payload])
    status = page.locator("#upload-status")
    await expect(status).to_contain_text("tool.exe: unsupported file type")
    await expect(status).to_have_class("error")
    await expect(page.locator("#document-list li")).to_have_count(0)


async def test_without_the_events_stream_the_list_is_polled(
    web: Watched, client: httpx.AsyncClient
) -> None:
    page = web.page
    # An older gateway, as the browser sees it: no /api/documents/events.
    asked: list[str] = []

    async def older_gateway(route: Route) -> None:
        asked.append(route.request.url)
        await route.fulfill(status=404, json={"detail": "Not Found"})

    await page.route("**/api/documents/events", older_gateway)
    await sign_in(page, client)
    await expect(page.locator("#live-mode")).to_have_text("Status refreshed every 2 s")
    row = await upload(page, "equipment.txt", POLICY)
    await expect(row.locator(".status")).to_have_text("indexed", timeout=INDEXING_MS)
    assert len(asked) == 1
    # A document uploaded elsewhere (another tab, the API) shows up too.
    user_token = (await stored_session(page))["access"]
    headers = {"Authorization": f"Bearer {user_token}"}
    files = {"file": ("from-the-api.txt", b"Parking is free on weekends.", "text/plain")}
    assert (await client.post("/api/documents", headers=headers, files=files)).status_code == 202
    elsewhere = page.locator("#document-list li").filter(has_text="from-the-api.txt")
    await expect(elsewhere.locator(".status")).to_have_text("indexed", timeout=INDEXING_MS)
    await expect(page.locator("#document-list li")).to_have_count(2)
    assert all("404" in error for error in web.errors), web.errors


MARKUP_NAME = "<img src=x onerror=alert(1)>.txt"
MARKUP = b"""Visitors collect a badge at reception <img src=x onerror="alert('img')"> before 9 am.
<script>alert('script')</script> Lost visitor badges cost 20 euros to replace.
"""
# Drawn as elements, any of these would be an injection.
INJECTED = "#messages img, #messages script, #document-list img, #source-dialog img"


async def test_markup_in_documents_and_names_is_shown_as_text(
    web: Watched, client: httpx.AsyncClient
) -> None:
    page = web.page
    await sign_in(page, client)
    await page.evaluate(
        "() => { window.violations = 0; document.addEventListener("
        "'securitypolicyviolation', () => { window.violations += 1; }); }"
    )
    row = await upload(page, MARKUP_NAME, MARKUP)
    await expect(row.locator(".status")).to_have_text("indexed", timeout=INDEXING_MS)
    await expect(row.locator(".filename")).to_have_text(MARKUP_NAME)

    answer = await ask(page, "Where do visitors collect a badge?")
    await expect(answer).to_have_attribute("data-state", "done", timeout=ANSWER_MS)
    await expect(answer.locator(".answer-text")).to_contain_text("<img src=x onerror=")
    await expect(answer.locator(".sources")).to_contain_text(MARKUP_NAME)
    await answer.locator("button.citation").first.click()
    await expect(page.locator("#source-title")).to_have_text(f"[1] {MARKUP_NAME}")
    await expect(page.locator("#source-text")).to_contain_text("<script>alert('script')</script>")

    assert await page.locator(INJECTED).count() == 0
    # Nothing ran, and nothing even tried (the CSP would have reported it).
    assert web.dialogs == []
    assert await page.evaluate("window.violations") == 0
    assert web.errors == []


async def test_an_expired_access_token_is_refreshed_and_a_reload_keeps_the_session(
    web: Watched, client: httpx.AsyncClient
) -> None:
    page = web.page
    user = await sign_in(page, client)
    first = await stored_session(page)
    # The access token the page holds stops working (as when it expires).
    await page.evaluate("() => { session.access = 'expired'; }")
    answer = await ask(page, "Anything about holidays?")
    await expect(answer).to_have_attribute("data-state", "done", timeout=ANSWER_MS)
    second = await stored_session(page)
    assert second["refresh"] != first["refresh"]
    assert second["access"] not in (first["access"], "expired")
    verified = await client.get(
        "/api/auth/verify", headers={"Authorization": f"Bearer {second['access']}"}
    )
    assert verified.status_code == 200 and verified.json()["username"] == user.username

    await page.reload()
    await expect(page.locator("#app-view")).to_be_visible()
    await expect(page.locator("#whoami")).to_have_text(user.username)
    # The reload spent the stored refresh token on a new pair.
    third = await stored_session(page)
    assert third["refresh"] != second["refresh"]
    # Only the 401 that started the refresh went wrong.
    assert all("401" in error for error in web.errors), web.errors


async def stored_session(page: Page) -> dict[str, str]:
    stored = await page.evaluate("sessionStorage.getItem('ragstream.session')")
    session: dict[str, str] = json.loads(stored)
    return session


async def test_register_sign_out_and_sign_in_again(web: Watched) -> None:
    page = web.page
    await page.goto("/")
    username = f"web-new-{uuid.uuid4().hex[:8]}"
    await page.click("#register-toggle")
    await expect(page.locator("#signin-title")).to_have_text("Create an account")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#signin-submit")
    await expect(page.locator("#whoami")).to_have_text(username)

    await page.click("#sign-out")
    await expect(page.locator("#signin-view")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('ragstream.session')") is None
    await page.fill("#username", username)
    await page.fill("#password", "not-the-password")
    await page.click("#signin-submit")
    await expect(page.locator("#signin-error")).to_have_text("Invalid username or password")
    await page.fill("#password", PASSWORD)
    await page.click("#signin-submit")
    await expect(page.locator("#whoami")).to_have_text(username)


async def test_the_page_has_a_strict_policy_and_docs_keep_theirs(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        asset = await client.get(f"/web/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert asset.headers["content-security-policy"] == policy
    assert (await client.get("/web/index.html")).status_code == 404
    assert (await client.get("/web/..%2Fapp.py")).status_code == 404
    config = await client.get("/web/config.json")
    assert config.json()["registration"] is True and ".md" in config.json()["suffixes"]
    # Swagger UI's scripts come from a CDN: /docs keeps the default policy.
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-security-policy"] == "frame-ancestors 'none'"
