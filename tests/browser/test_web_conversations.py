"""The web page's conversations sidebar and feedback buttons, in the
machine's Chromium against the session's real gateway and workers: ask in
two conversations, find them listed (titled by their first question, the
most recent first), open the first again with its turns, continue it,
rename it in place, rate an answer down with a note, and delete a
conversation with two clicks; no JavaScript dialog, no console error."""

from __future__ import annotations

import httpx
from playwright.async_api import Locator, Page, expect

from tests.browser.conftest import ARTIFACTS, Watched
from tests.browser.test_web_chat import ANSWER_MS, INDEXING_MS, POLICY, ask, sign_in, upload


def listed(page: Page, title: str) -> Locator:
    return page.locator("#conversation-list li").filter(has=page.locator(".open", has_text=title))


async def answered(page: Page, question: str) -> Locator:
    answer = await ask(page, question)
    await expect(answer).to_have_attribute("data-state", "done", timeout=ANSWER_MS)
    return answer


async def test_conversations_sidebar_and_feedback(web: Watched, client: httpx.AsyncClient) -> None:
    page = web.page
    user = await sign_in(page, client)
    row = await upload(page, "travel-policy.md", POLICY)
    await expect(row.locator(".status")).to_have_text("indexed", timeout=INDEXING_MS)

    first = await answered(page, "How many days do I have to submit travel expense claims?")
    await expect(first).to_have_attribute("data-turn", "1")
    await answered(page, "And who books hotel rooms?")
    await page.click("#new-conversation")
    await expect(page.locator("#messages li")).to_have_count(0)
    await answered(page, "What does every engineer receive on the first day?")

    items = page.locator("#conversation-list li")
    await expect(items).to_have_count(2)
    await expect(items.nth(0).locator(".open")).to_have_text(
        "What does every engineer receive on the first day?"
    )
    claims = listed(page, "How many days do I have to submit travel expense claims?")
    await expect(claims.locator(".meta")).to_contain_text("2 turns")
    await expect(items.nth(0)).to_have_attribute("data-active", "true")

    # Opened again: its two turns, drawn like streamed ones, and asked on in it.
    await claims.locator(".open").click()
    await expect(claims).to_have_attribute("data-active", "true")
    answers = page.locator("#messages li.answer")
    await expect(answers).to_have_count(2)
    await expect(answers.nth(0).locator(".answer-text")).to_contain_text("within 30 days")
    await expect(answers.nth(0).locator("button.citation").first).to_have_text("[1]")
    third = await answered(page, "How much are meals reimbursed per day?")
    await expect(third).to_have_attribute("data-turn", "3")
    await expect(items.nth(0).locator(".meta")).to_contain_text("3 turns")

    # Rated down with a note and the wrong source; the API has it.
    await third.locator("button.rate-down").click()
    form = third.locator(".feedback-form")
    await form.locator("textarea").fill("It should say 45 euros")
    await form.locator("select").select_option("1")
    await form.locator("button[type=submit]").click()
    await expect(third.locator(".feedback-state")).to_have_text("Thanks: your note was sent")
    await expect(third.locator("button.rate-down")).to_have_attribute("aria-pressed", "true")
    conversation = await claims.get_attribute("data-id")
    rated = await client.get(
        f"/api/conversations/{conversation}/turns/3/feedback", headers=user.headers
    )
    assert rated.status_code == 200, rated.text
    assert (rated.json()["rating"], rated.json()["comment"], rated.json()["wrong_source"]) == (
        "down",
        "It should say 45 euros",
        1,
    )
    await answers.nth(0).locator("button.rate-up").click()
    await expect(answers.nth(0).locator("button.rate-up")).to_have_attribute("aria-pressed", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "web-conversations.png", full_page=True)

    # Renamed in place; opened again, the ratings are shown pressed.
    await claims.locator(".rename").click()
    await claims.locator("input").fill("Travel claims")
    await claims.locator("input").press("Enter")
    renamed = listed(page, "Travel claims")
    await expect(renamed).to_have_count(1)
    await items.nth(1).locator(".open").click()
    await renamed.locator(".open").click()
    await expect(answers).to_have_count(3)
    await expect(answers.nth(0).locator("button.rate-up")).to_have_attribute("aria-pressed", "true")
    await expect(answers.nth(2).locator("button.rate-down")).to_have_attribute(
        "aria-pressed", "true"
    )

    # Deleted: one click arms, the second deletes; the chat starts afresh.
    delete = renamed.locator(".delete")
    await delete.click()
    await expect(delete).to_have_text("Delete?")
    await delete.click()
    await expect(items).to_have_count(1)
    await expect(page.locator("#messages li")).to_have_count(0)
    gone = await client.get(f"/api/conversations/{conversation}", headers=user.headers)
    assert gone.status_code == 404
    assert web.errors == [] and web.dialogs == []
