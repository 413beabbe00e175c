"""The details page in an admin's hands, as a person notices it: in Chromium,
with the keyboard, two browsers at once, and at phone width."""

import pytest
from playwright.sync_api import expect

from environments.models import DatabaseAccount, Operation
from environments.operations import request_access
from tests.browser.conftest import screenshot
from tests.browser.test_details_page import badge, choose, confirm, open_details
from tests.conftest import committing, run_worker

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def test_a_refusal_replaces_the_live_region_and_never_nests_a_page(
    sign_in, live_server, environment, manager, owner, worker
):
    first, second = sign_in("mona"), sign_in("alice")
    for page in (first, second):
        open_details(page, live_server, environment)
    choose(first, "Restart service")
    first.check("input[value=aos]")
    confirm(first)
    expect(badge(first)).to_have_text("Restarting service")

    # The second browser still shows Deployed and picks an action.
    second.click("summary:has-text('Maintain')")
    second.click("[data-testid=maintain-menu] >> text=Enable Maintenance mode")

    expect(second.get_by_test_id("refusal")).to_contain_text("Another operation is in progress")
    expect(second.locator("#live")).to_have_count(1)
    expect(second.get_by_test_id("maintain")).to_have_count(1)
    expect(second.locator("[data-testid=history]")).to_have_count(1)
    expect(badge(second)).to_have_text("Restarting service")


def test_an_idle_page_learns_of_someone_elses_operation(
    sign_in, live_server, environment, manager, owner, worker
):
    watcher, actor = sign_in("alice"), sign_in("mona")
    watcher.goto(f"{live_server.url}/environments/")
    list_badge = watcher.get_by_test_id("status-badge").first
    expect(list_badge).to_have_text("Deployed")
    open_details(actor, live_server, environment)
    choose(actor, "Enable Maintenance mode")
    confirm(actor)

    # Pages poll every 10 s while nothing runs: the change arrives without a reload.
    expect(list_badge).to_have_text("In Maintenance", timeout=25_000)
    open_details(watcher, live_server, environment)
    expect(badge(watcher)).to_have_text("In Maintenance")
    choose(actor, "Disable Maintenance mode")
    confirm(actor)
    expect(badge(watcher)).to_have_text("Deployed", timeout=25_000)


def test_keyboard_alone_restarts_a_service_and_hears_the_status(
    sign_in, live_server, environment, manager, worker
):
    page = sign_in("mona")
    open_details(page, live_server, environment)
    page.focus("#maintain-toggle")
    page.keyboard.press("Enter")  # opens the menu
    page.keyboard.press("ArrowDown")  # to its first action
    expect(page.locator("#maintain-restart_service")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("confirm")).to_be_visible()
    expect(page.locator("input[value=aos]")).to_be_focused()  # focus went to the form
    page.keyboard.press("Space")
    page.keyboard.press("Tab")  # past the other services, to the reason
    while page.evaluate("document.activeElement.name") != "reason":
        page.keyboard.press("Tab")
    page.keyboard.type("keyboard only")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # Confirm

    announcer = page.get_by_test_id("status-announcer")
    expect(announcer).to_have_text("Restarting service")
    expect(page.locator("#status-line")).to_be_focused()
    expect(announcer).to_have_text("Deployed", timeout=20_000)
    assert Operation.objects.get().reason == "keyboard only"


def test_polls_leave_focus_where_it_was(sign_in, live_server, environment, manager, worker):
    page = sign_in("mona")
    open_details(page, live_server, environment)
    choose(page, "Restart service")
    page.check("input[value=aos]")
    confirm(page)
    expect(badge(page)).to_have_text("Restarting service")
    expect(page.locator("#status-line")).to_be_focused()  # the action's own swap settled
    page.focus("#full-history")
    page.wait_for_timeout(2500)  # polls while the restart runs, and once it settled
    expect(page.locator("#full-history")).to_be_focused()


def test_a_validation_error_takes_focus_to_the_field(sign_in, live_server, environment, manager):
    page = sign_in("mona")
    open_details(page, live_server, environment)
    choose(page, "Enable Maintenance mode")
    page.click("#maintain-panel button:has-text('Confirm')")  # no reason
    expect(page.locator("textarea[name=reason]")).to_be_focused()
    expect(page.locator("#id_reason_error")).to_contain_text("Give a reason")


def test_the_maintain_menu_is_a_flyout_that_escape_a_choice_or_a_click_outside_close(
    sign_in, live_server, environment, manager
):
    page = sign_in("mona")
    open_details(page, live_server, environment)
    menu = page.get_by_test_id("maintain")
    flyout = page.locator(".flyout")

    page.click("#maintain-toggle")
    expect(flyout).to_be_visible()
    assert flyout.evaluate("e => getComputedStyle(e).position") == "absolute"
    page.keyboard.press("Escape")
    expect(flyout).to_be_hidden()
    expect(page.locator("#maintain-toggle")).to_be_focused()

    page.click("#maintain-toggle")
    page.click("h1")  # outside
    expect(flyout).to_be_hidden()

    page.click("#maintain-toggle")
    page.click("[data-testid=maintain-menu] >> text=Enable Maintenance mode")
    expect(page.get_by_test_id("confirm")).to_be_visible()
    assert menu.evaluate("e => e.open") is False


def test_credentials_are_hidden_until_revealed_and_copy_as_a_psql_command(
    sign_in, live_server, environment, manager, settings, monkeypatch
):
    monkeypatch.setenv("PORTAL_DB_SERVER_LOCAL_HOST", "db.contoso.net:6432")
    with committing():
        request_access(environment, manager, level="read", reason="check a posting")
    run_worker()
    page = sign_in("mona", viewport=PHONE)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_details(page, live_server, environment)
    page.get_by_role("link", name="Show credentials").click()
    card = page.get_by_test_id("credentials")
    password = page.get_by_test_id("credential-password")
    expect(card).to_be_visible()
    expect(password).to_be_hidden()
    expect(page.get_by_test_id("credential-host")).to_have_text("db.contoso.net")
    expect(page.get_by_test_id("credential-port")).to_have_text("6432")

    card.get_by_role("button", name="Reveal").click()
    expect(password).to_be_visible()
    account = DatabaseAccount.objects.get()
    card.get_by_role("button", name="Copy a psql command").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith('psql "host=db.contoso.net port=6432')
    assert f"user={account.username}" in copied
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the credentials scroll sideways ({width}px)"
    screenshot(page, "database-access-phone.png")


def test_form_fields_have_borders_a_person_can_see(sign_in, live_server, environment, manager):
    page = sign_in("mona")
    open_details(page, live_server, environment)
    choose(page, "Enable access")
    ratio = page.evaluate(
        """() => {
        const field = document.querySelector("input[name=hours]");
        const rgb = (c) => c.match(/\\d+/g).slice(0, 3).map(Number);
        const lum = ([r, g, b]) => {
          const f = (v) => {
            v /= 255;
            return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
          };
          return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
        };
        const border = lum(rgb(getComputedStyle(field).borderTopColor));
        const back = lum(rgb(getComputedStyle(field.closest(".card")).backgroundColor));
        return (Math.max(border, back) + 0.05) / (Math.min(border, back) + 0.05);
      }"""
    )
    assert ratio >= 3, f"field border contrast {ratio:.2f}:1"
    help_below = page.evaluate(
        """() => {
        const field = document.querySelector("input[name=hours]").getBoundingClientRect();
        const help = document.getElementById("id_hours_helptext").getBoundingClientRect();
        return help.top >= field.bottom - 1;
      }"""
    )
    assert help_below, "the help text is not under its field"


PAGES = [
    "/environments/",
    "/environments/{slug}/",
    "/environments/{slug}/history/",
    "/history/",
    "/environments/{slug}/sign-in/",
    "/environments/{slug}/windows/",
    "/environments/{slug}/windows/schedule/",
    "/tokens/",
    "/settings/",
    "/accounts/password_change/",
]


def test_no_page_scrolls_sideways_at_phone_width_and_targets_are_tall_enough(
    sign_in, live_server, environment, manager, start
):
    start("restart_service", environment, manager, service_kind="aos", reason="history")
    page = sign_in("mona", viewport=PHONE)
    for path in [*PAGES, Operation.objects.get().get_absolute_url()]:
        page.goto(live_server.url + path.format(slug=environment.slug))
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways at phone width ({width}px)"
    page.goto(live_server.url + "/environments/")
    for link in page.locator(".main-nav a").all():
        assert link.bounding_box()["height"] >= 44, link.inner_text()
    page.goto(f"{live_server.url}/environments/{environment.slug}/history/")
    screenshot(page, "history-phone.png")


def test_an_environments_history_shows_every_column_at_laptop_width(
    sign_in, live_server, environment, manager, start
):
    start("restart_service", environment, manager, service_kind="aos", reason="history")
    page = sign_in("mona")
    page.goto(f"{live_server.url}/environments/{environment.slug}/history/")
    table = page.get_by_test_id("history")
    for header in ("Activity", "Type", "Requested by", "Activity ID"):
        cell = table.get_by_role("columnheader", name=header, exact=True)
        box = cell.bounding_box()
        assert box["x"] + box["width"] <= 1280, f"{header} falls off the screen"
    row = table.locator("[data-testid=history-row]").first
    assert row.bounding_box()["height"] < 80, "a row wraps to several lines"
