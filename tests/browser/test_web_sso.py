"""Single sign-on in the web page, in a real headless Chromium: the page's
"Sign in with your organisation" link, the real OpenID provider's sign-in
and consent pages (tests/support/oidc), back to the page signed in as the
provider's user (authorization code with PKCE, state and nonce checked by
the gateway); a refusal at the provider comes back as a message."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.support.oidc_provider import OidcProvider
from tests.support.processes import Component


async def test_the_page_signs_in_through_the_provider(
    browser: Browser, oidc_gateway: Component, oidc_provider: OidcProvider
) -> None:
    context = await browser.new_context(base_url=oidc_gateway.base_url)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto("/")
        await page.click("#sso-link")
        # The provider's own pages (oidc-provider's development sign-in).
        await page.fill("input[name=login]", "bob")
        await page.fill("input[name=password]", "any")
        await page.click("button[type=submit]")
        # Its consent page, unless it remembers the grant.
        consent = page.locator("form:has(input[value=consent]) button")
        app = page.locator("#app-view")
        await expect(consent.or_(app).first).to_be_visible()
        if await consent.count():
            await consent.click()
        await expect(app).to_be_visible()
        await expect(page.locator("#whoami")).to_have_text(oidc_provider.name("bob"))
        assert "sso=" not in page.url  # the one-time code is out of the address
        # A reload keeps the session, as after a password sign-in.
        await page.reload()
        await expect(page.locator("#app-view")).to_be_visible()
        assert errors == []
    finally:
        await context.close()


async def test_a_sign_in_aborted_at_the_provider_shows_why(
    browser: Browser, oidc_gateway: Component
) -> None:
    context = await browser.new_context(base_url=oidc_gateway.base_url)
    page = await context.new_page()
    try:
        await page.goto("/")
        await page.click("#sso-link")
        await page.click("a[href*=abort]")  # "Cancel" on the provider's sign-in page
        await expect(page.locator("#signin-error")).to_contain_text("did not let you in")
        await expect(page.locator("#signin-view")).to_be_visible()
    finally:
        await context.close()
