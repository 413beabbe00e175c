"""An admin works from the details page in a real Chromium: Maintain, confirm, watch."""

import re

import pytest
from playwright.sync_api import expect

from environments.models import Operation, OperationKind, Outcome
from tests.browser.conftest import screenshot
from tests.helpers import add_history

pytestmark = pytest.mark.browser


def open_details(page, live_server, environment):
    page.goto(f"{live_server.url}{environment.get_absolute_url()}")
    # A marker that a full page load would wipe: the page must never reload.
    page.evaluate("window.__notReloaded = true")


def choose(page, action):
    page.click("summary:has-text('Maintain')")
    page.click(f"[data-testid=maintain-menu] >> text={action}")
    expect(page.get_by_test_id("confirm")).to_be_visible()


def confirm(page, reason="browser test"):
    page.fill("#maintain-panel textarea[name=reason]", reason)
    page.click("#maintain-panel button:has-text('Confirm')")


def badge(page):
    return page.get_by_test_id("live").get_by_test_id("status-badge")


def assert_not_reloaded(page):
    assert page.evaluate("window.__notReloaded === true"), "the page reloaded"


def test_manager_restarts_aos_and_sees_it_settle_without_reload(
    sign_in, live_server, environment, manager, worker
):
    page = sign_in("mona")
    open_details(page, live_server, environment)

    choose(page, "Restart service")
    page.check("input[value=aos]")
    confirm(page, "AOS is slow")

    expect(badge(page)).to_have_text("Restarting service")
    expect(page.get_by_test_id("in-progress")).to_contain_text("Restart service: AOS")
    screenshot(page, "restarting-service.png")

    expect(badge(page)).to_have_text("Deployed", timeout=20_000)
    row = page.get_by_test_id("history-row").first
    expect(row).to_contain_text("Restart service: AOS")
    expect(row).to_contain_text("Succeeded")
    expect(page.get_by_test_id("service-AOS")).to_contain_text("Running")
    assert_not_reloaded(page)
    assert Operation.objects.get().outcome == Outcome.SUCCEEDED


def test_manager_enables_then_disables_maintenance_mode_through_servicing(
    sign_in, live_server, environment, manager, maint, worker
):
    page = sign_in("mona")
    open_details(page, live_server, environment)

    choose(page, "Enable Maintenance mode")
    expect(page.get_by_test_id("sign-in-allowed")).to_contain_text("maya")
    confirm(page)
    expect(badge(page)).to_have_text("Servicing")
    expect(badge(page)).to_have_text("In Maintenance", timeout=20_000)
    expect(page.get_by_test_id("maintenance-notice")).to_be_visible()
    screenshot(page, "in-maintenance.png")

    choose(page, "Disable Maintenance mode")
    confirm(page)
    expect(badge(page)).to_have_text("Servicing")
    expect(badge(page)).to_have_text("Deployed", timeout=20_000)
    assert_not_reloaded(page)
    kinds = list(Operation.objects.order_by("started_at").values_list("kind", flat=True))
    assert kinds == [OperationKind.ENABLE_MAINTENANCE, OperationKind.DISABLE_MAINTENANCE]


def test_team_member_sees_no_maintain_menu(sign_in, live_server, environment, member):
    page = sign_in("tom")
    open_details(page, live_server, environment)
    expect(badge(page)).to_have_text("Deployed")
    expect(page.locator("summary:has-text('Maintain')")).to_have_count(0)


def fail_a_restart(page, failures_file, environment):
    failures_file.write_text(f"{environment.slug} restart_service\n")
    choose(page, "Restart service")
    page.check("input[value=dixf]")
    confirm(page)
    expect(badge(page)).to_have_text("Failed", timeout=20_000)
    expect(page.get_by_test_id("failure")).to_contain_text("Simulated failure")
    failures_file.write_text("")


@pytest.mark.parametrize(
    "recovery, outcome",
    [("Resume", "Succeeded"), ("Rollback", "Rolled back"), ("Abort", "Aborted")],
)
def test_failed_restart_offers_resume_rollback_and_abort_and_each_works(
    sign_in, live_server, environment, manager, worker, failures_file, recovery, outcome
):
    page = sign_in("mona")
    open_details(page, live_server, environment)
    fail_a_restart(page, failures_file, environment)
    page.click("summary:has-text('Maintain')")
    menu = page.get_by_test_id("maintain-menu")
    for label in ("Resume", "Rollback", "Abort"):
        expect(menu.get_by_text(label, exact=True)).to_be_visible()

    page.click(f"[data-testid=maintain-menu] >> text={recovery}")
    expect(page.get_by_test_id("confirm")).to_contain_text(recovery)
    confirm(page)

    expect(badge(page)).to_have_text("Deployed", timeout=20_000)
    row = page.get_by_test_id("history-row").first
    expect(row).to_contain_text(f"{recovery}: Restart service: DIXF")
    expect(row).to_contain_text(outcome)
    assert_not_reloaded(page)


def test_second_admins_confirm_is_refused_with_the_message(
    sign_in, live_server, environment, manager, owner, worker
):
    first = sign_in("mona")
    second = sign_in("alice")
    for page in (first, second):
        open_details(page, live_server, environment)
        choose(page, "Restart service")
        page.check("input[value=aos]")
        page.fill("#maintain-panel textarea[name=reason]", "both at once")

    first.click("button:has-text('Confirm')")
    expect(badge(first)).to_have_text("Restarting service")
    second.click("button:has-text('Confirm')")

    expect(second.get_by_test_id("refusal")).to_contain_text(
        re.compile("Another operation is in progress")
    )
    expect(badge(second)).to_have_text("Restarting service")
    assert Operation.objects.count() == 1


def test_details_page_fits_a_phone_screen(sign_in, live_server, environment, manager):
    page = sign_in("mona", viewport={"width": 390, "height": 844})
    open_details(page, live_server, environment)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width}px)"


def test_a_failed_restart_is_resumed_from_the_failure_box_and_ends_deployed(
    sign_in, live_server, environment, manager, worker, failures_file
):
    page = sign_in("mona")
    open_details(page, live_server, environment)
    fail_a_restart(page, failures_file, environment)

    box = page.get_by_test_id("failure")
    box.get_by_role("link", name="Resume", exact=True).click()
    form = box.get_by_test_id("confirm")
    expect(form.locator("h3")).to_contain_text("Resume: Restart service: DIXF (failed ")
    expect(form.locator("h3")).to_contain_text("Simulated failure")
    expect(form.locator("textarea[name=reason]")).to_be_focused()
    form.locator("textarea[name=reason]").fill("try again")
    form.get_by_role("button", name="Confirm").click()

    expect(badge(page)).to_have_text("Deployed", timeout=20_000)
    row = page.get_by_test_id("history-row").first
    expect(row).to_contain_text("Resume: Restart service: DIXF")
    expect(row).to_contain_text("Succeeded")
    assert_not_reloaded(page)


def test_escape_closes_the_failure_boxs_confirm_step(
    sign_in, live_server, environment, manager, worker, failures_file
):
    page = sign_in("mona")
    open_details(page, live_server, environment)
    fail_a_restart(page, failures_file, environment)
    page.get_by_test_id("failure").get_by_role("link", name="Abort", exact=True).click()
    expect(page.get_by_test_id("confirm")).to_be_visible()

    page.keyboard.press("Escape")

    expect(page.get_by_test_id("confirm")).to_have_count(0)
    expect(badge(page)).to_have_text("Failed")


def test_at_phone_width_status_and_maintain_come_before_the_facts_and_five_history_rows(
    sign_in, live_server, environment, manager
):
    add_history(environment, manager, 12)
    page = sign_in("mona", viewport={"width": 390, "height": 844})
    open_details(page, live_server, environment)

    def top(testid_or_id):
        return page.locator(testid_or_id).first.bounding_box()["y"]

    status, maintain = top("#status-card"), top("#maintain-card")
    facts, history = top("#facts"), top("#history-card")
    assert status < maintain < facts < history
    expect(page.locator("#facts details")).not_to_have_attribute("open", "")
    expect(page.get_by_test_id("history-row")).to_have_count(5)
    expect(page.locator("#full-history")).to_be_visible()
    # The navigation: one row, nothing cut off.
    links = page.locator(".main-nav a")
    tops = {round(links.nth(i).bounding_box()["y"]) for i in range(links.count())}
    assert len(tops) == 1
    assert page.evaluate(
        "(() => { const n = document.querySelector('.main-nav');"
        " return n.scrollWidth <= n.clientWidth && n.getBoundingClientRect().right <= 390; })()"
    )
    screenshot(page, "details-phone.png")
