"""The API's browsable docs render in a real Chromium under the portal's Content
Security Policy, from the bundled Swagger UI (no CDN), without a violation."""

import pytest
from playwright.sync_api import expect

from tests.browser.test_content_security_policy import RECORD_VIOLATIONS

pytestmark = pytest.mark.browser


def test_the_api_docs_render_without_a_policy_violation(browser, live_server, db):
    context = browser.new_context()
    try:
        page = context.new_page()
        page.add_init_script(RECORD_VIOLATIONS)
        console, outside = [], []
        page.on("console", lambda message: console.append(message.text))
        page.on(
            "request",
            lambda request: (
                None if request.url.startswith(live_server.url) else outside.append(request.url)
            ),
        )
        page.goto(f"{live_server.url}/api/v1/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text(
            "Environment maintenance portal"
        )
        operation = page.locator(
            ".opblock-summary-path", has_text="/api/v1/environments/{slug}/operations"
        )
        expect(operation).to_be_visible()
        operation.click()
        expect(page.locator(".opblock-body").first).to_be_visible()
        expect(page.locator(".btn.authorize")).to_be_visible()
        violations = page.evaluate("window.__cspViolations")
        assert violations == []
        assert [text for text in console if "Content Security Policy" in text] == []
        assert [url for url in outside if not url.startswith("data:")] == []
    finally:
        context.close()
