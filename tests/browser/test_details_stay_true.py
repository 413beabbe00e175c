"""The details page tells the truth while a person uses it: the status keeps
coming while the Maintain menu or a form is open, idle and hidden pages poll as they
should, signing in again returns to the page, credentials keep focus, Escape closes a step,
and a skip link leads every page."""

import re

import pytest
from playwright.sync_api import expect

from environments import operations
from environments.models import OperationKind
from environments.operations import request_access
from tests.browser.test_details_page import badge, choose, confirm, open_details
from tests.conftest import PASSWORD, committing, run_worker

pytestmark = pytest.mark.browser


def test_the_status_keeps_coming_while_the_maintain_menu_stays_open(
    sign_in, live_server, environment, manager, worker
):
    page = sign_in("mona")
    open_details(page, live_server, environment)
    choose(page, "Restart service")
    page.check("input[value=aos]")
    confirm(page)
    expect(badge(page)).to_have_text("Restarting service")
    page.click("#maintain-toggle")
    menu = page.get_by_test_id("maintain")
    expect(menu.get_by_test_id("maintain-busy")).to_be_visible()

    # The whole restart passes with the menu open: the status, the history and the
    # announcer follow, the menu stays open as it was, and focus stays on its button.
    expect(badge(page)).to_have_text("Deployed", timeout=20_000)
    expect(page.get_by_test_id("history-row").first).to_contain_text("Succeeded")
    expect(page.get_by_test_id("status-announcer")).to_contain_text(
        re.compile(r"^Deployed: Restart service, .* available in the Maintain menu")
    )
    assert menu.evaluate("e => e.open") is True
    expect(menu.get_by_test_id("maintain-busy")).to_be_visible()
    expect(page.locator("#maintain-toggle")).to_be_focused()

    # Closed, the menu catches up; opened again, it offers the restart.
    page.keyboard.press("Escape")
    expect(menu.get_by_test_id("maintain-busy")).to_have_count(0)
    page.click("#maintain-toggle")
    expect(page.locator("#maintain-restart_service")).to_be_visible()


def test_a_half_filled_form_survives_someone_elses_operation(
    sign_in, live_server, environment, manager, owner, start
):
    page = sign_in("mona")
    open_details(page, live_server, environment)
    choose(page, "Enable Maintenance mode")
    reason = page.locator("#maintain-panel textarea[name=reason]")
    reason.fill("half a thought")
    expect(reason).to_be_focused()

    # The owner restarts; the worker's steps are taken here, one at a time.
    restart = start(
        OperationKind.RESTART_SERVICE, environment, owner, service_kind="aos", reason="x"
    )

    expect(badge(page)).to_have_text("Restarting service", timeout=20_000)
    announcer = page.get_by_test_id("status-announcer")
    expect(announcer).to_have_text(
        "Restarting service: Enable Maintenance mode is not available now."
    )
    expect(reason).to_have_value("half a thought")
    expect(reason).to_be_focused()
    # Said once, not again at each news of the same operation.
    page.evaluate(
        """() => {
        window.__said = 0;
        new MutationObserver(() => window.__said++).observe(
          document.getElementById("status-announcer"), { childList: true, characterData: true });
        document.addEventListener("htmx:afterSettle", () => {
          window.__running = !!document.querySelector("#live [data-outcome=running]");
        });
      }"""
    )
    operations.claim_step(restart.pk, 1)
    page.wait_for_function("() => window.__running")
    assert page.evaluate("window.__said") == 0
    operations.complete_operation(restart.pk)
    expect(badge(page)).to_have_text("Deployed", timeout=20_000)
    expect(announcer).to_have_text("Deployed")  # and the form is worth sending again
    expect(reason).to_have_value("half a thought")


def test_a_hidden_page_does_not_poll_and_catches_up_when_shown(
    sign_in, live_server, environment, manager, start
):
    page = sign_in("mona")
    open_details(page, live_server, environment)
    page.evaluate(
        """() => {
        window.__polls = 0;
        document.addEventListener("htmx:beforeRequest", () => window.__polls++);
        Object.defineProperty(document, "hidden", { value: true, configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
      }"""
    )
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos", reason="x")

    page.wait_for_timeout(5_000)  # more than two polls' worth while hidden
    assert page.evaluate("window.__polls") == 0
    expect(badge(page)).to_have_text("Deployed")

    page.evaluate(
        """() => {
        delete document.hidden;
        document.dispatchEvent(new Event("visibilitychange"));
      }"""
    )
    expect(badge(page)).to_have_text("Restarting service")


def test_signing_in_again_after_signing_out_elsewhere_returns_to_the_styled_page(
    sign_in, live_server, environment, manager
):
    page = sign_in("mona")
    open_details(page, live_server, environment)
    other_tab = page.context.new_page()
    other_tab.goto(f"{live_server.url}/environments/")
    other_tab.get_by_role("button", name="Sign out").click()

    # The next poll takes the whole tab to sign in, and back to the page, not the poll.
    login = f"{live_server.url}/accounts/login/?next={environment.get_absolute_url()}"
    page.wait_for_url(login)
    page.fill("#id_username", "mona")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    page.wait_for_url(f"{live_server.url}{environment.get_absolute_url()}")
    expect(page.locator("h1")).to_have_text(environment.name)
    expect(page.locator(".site-header")).to_be_visible()
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(246, 248, 250)", "the page is not styled"


def test_show_credentials_takes_focus_to_them_not_to_the_status(
    sign_in, live_server, environment, manager
):
    with committing():
        request_access(environment, manager, level="read", reason="check a posting")
    run_worker()
    page = sign_in("mona")
    open_details(page, live_server, environment)
    page.get_by_role("link", name="Show credentials").click()

    card = page.get_by_role("region", name=re.compile("^Credentials of "))
    expect(card).to_be_focused()
    expect(card).to_be_in_viewport()
    card.get_by_role("button", name="Reveal").click()
    assert page.evaluate("!!document.activeElement.closest('[data-testid=credentials]')")


def test_escape_closes_a_confirm_step_and_returns_focus(sign_in, live_server, environment, manager):
    page = sign_in("mona")
    open_details(page, live_server, environment)
    choose(page, "Enable Maintenance mode")
    page.focus("#maintain-panel textarea[name=reason]")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("confirm")).to_have_count(0)
    expect(page.locator("#maintain-toggle")).to_be_focused()

    schedule = page.get_by_test_id("schedule-window")
    schedule.click()
    expect(page.locator("#window-panel input[name=start][value=later]")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("schedule-window-form")).to_have_count(0)
    expect(schedule).to_be_focused()


FIRST_FOCUSABLE = """() => document.querySelector(
    'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex="0"]')"""


@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/environments/", "/environments/{slug}/", "/history/"]
)
def test_the_first_tab_stop_of_a_page_skips_to_its_main_content(
    browser, live_server, environment, manager, path
):
    context = browser.new_context()
    try:
        page = context.new_page()
        if path != "/accounts/login/":
            page.goto(f"{live_server.url}/accounts/login/")
            page.fill("#id_username", "mona")
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_server.url}/environments/")
        page.goto(live_server.url + path.format(slug=environment.slug))
        skip = page.get_by_role("link", name="Skip to main content")
        assert page.evaluate(f"({FIRST_FOCUSABLE})().textContent") == "Skip to main content"
        expect(skip).not_to_be_in_viewport()  # out of sight until it has focus

        # The sign-in page puts focus in its first field; every other page starts at the top.
        if path == "/accounts/login/":
            skip.focus()
        else:
            page.keyboard.press("Tab")
        expect(skip).to_be_focused()
        expect(skip).to_be_in_viewport()
        page.keyboard.press("Enter")
        expect(page.locator("main")).to_be_focused()
    finally:
        context.close()
