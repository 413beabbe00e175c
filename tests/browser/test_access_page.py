"""Just-in-time access in a real Chromium: Enable access and Request access."""

import pytest
from playwright.sync_api import expect

from environments.models import DatabaseAccount, FirewallRule
from tests.browser.conftest import screenshot
from tests.browser.test_details_page import choose, open_details

pytestmark = pytest.mark.browser


def test_manager_enables_access_for_an_address_and_removes_it(
    sign_in, live_server, environment, manager, worker
):
    page = sign_in("mona")
    open_details(page, live_server, environment)

    choose(page, "Enable access")
    page.fill("input[name=name]", "office")
    page.fill("input[name=address]", "0.0.0.0/0")
    page.fill("textarea[name=reason]", "troubleshooting")
    page.click("button:has-text('Confirm')")
    expect(page.get_by_test_id("confirm")).to_contain_text("whole internet")
    assert not FirewallRule.objects.exists()

    page.fill("input[name=address]", "203.0.113.7")
    page.click("button:has-text('Confirm')")
    rule = page.get_by_test_id("firewall-rule")
    expect(rule).to_contain_text("203.0.113.7/32")
    expect(rule).to_contain_text("Active", timeout=20_000)

    rule.get_by_role("link", name="Remove").click()
    expect(page.get_by_test_id("confirm-end")).to_contain_text("Remove firewall rule office")
    page.get_by_test_id("confirm-end").get_by_role("button", name="Confirm").click()
    expect(page.get_by_test_id("firewall-rule")).to_have_count(0)
    expect(page.get_by_test_id("history-row").first).to_contain_text(
        "Remove access", timeout=20_000
    )


def test_requester_sees_credentials_and_another_admin_does_not(
    sign_in, live_server, environment, manager, owner, worker
):
    page = sign_in("mona")
    open_details(page, live_server, environment)
    page.click("text=Request access")
    page.check("input[value=read]")
    page.fill("#access-panel textarea[name=reason]", "check a posting")
    page.click("#access-panel button:has-text('Confirm')")

    page.get_by_role("link", name="Show credentials").click(timeout=20_000)
    expect(page.get_by_test_id("credentials")).to_be_visible()
    password = page.get_by_test_id("credential-password").inner_text()
    assert len(password) >= 32
    screenshot(page, "database-access.png")

    other = sign_in("alice")
    open_details(other, live_server, environment)
    expect(other.get_by_test_id("database-account")).to_contain_text("mona")
    expect(other.get_by_role("link", name="Show credentials")).to_have_count(0)
    assert password not in other.content()

    page.get_by_test_id("database-account").get_by_role("link", name="Revoke").click()
    page.get_by_test_id("confirm-end").get_by_role("button", name="Confirm").click()
    expect(page.get_by_test_id("database-account")).to_have_count(0)
    assert DatabaseAccount.objects.get().end_reason == "revoked"
