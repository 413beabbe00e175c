"""The Content Security Policy holds in a real Chromium: htmx works under it (no eval,
no inline script or style) and no page breaks a rule, the admin's included."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

# Records what the browser refused, before any page script runs.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def test_pages_and_htmx_work_under_the_policy_without_a_violation(
    sign_in, live_server, environment, superuser, worker
):
    page = sign_in("root")
    page.add_init_script(RECORD_VIOLATIONS)
    console = []
    page.on("console", lambda message: console.append(message.text))
    violations = []

    def visit(path):
        page.goto(f"{live_server.url}{path}")
        violations.extend(page.evaluate("window.__cspViolations"))

    visit(environment.get_absolute_url())
    page.click("summary:has-text('Maintain')")
    page.click("[data-testid=maintain-menu] >> text=Restart service")
    expect(page.get_by_test_id("confirm")).to_be_visible()
    page.check("input[value=aos]")
    page.fill("textarea[name=reason]", "under the policy")
    page.click("button:has-text('Confirm')")
    badge = page.get_by_test_id("live").get_by_test_id("status-badge")
    expect(badge).to_have_text("Restarting service")
    expect(badge).to_have_text("Deployed", timeout=20_000)
    violations.extend(page.evaluate("window.__cspViolations"))

    for path in [
        "/environments/",
        "/history/",
        f"/environments/{environment.slug}/history/",
    ]:
        visit(path)
    visit(reverse("admin:index"))
    visit(reverse("admin:environments_environment_changelist"))
    visit(reverse("admin:environments_environment_change", args=[environment.pk]))

    assert violations == []
    assert [text for text in console if "Content Security Policy" in text] == []
