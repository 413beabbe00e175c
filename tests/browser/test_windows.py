"""A manager schedules maintenance mode in a real Chromium, in their own time zone, sees
the window on the details page, and cancels it."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from environments.models import MaintenanceWindow, WindowState
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ZONE = "America/Los_Angeles"


@pytest.fixture
def page_in_los_angeles(browser, live_server, manager):
    """A browser in Los Angeles, signed in as mona through the real sign-in form."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id=ZONE)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "mona")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/environments/")
    yield page
    context.close()


def test_manager_schedules_a_window_sees_it_on_the_details_page_and_cancels_it(
    page_in_los_angeles, live_server, environment, manager
):
    page = page_in_los_angeles
    # The list page's script told the portal the browser's time zone.
    assert any(c["name"] == "tz" and c["value"] == ZONE for c in (page.context.cookies()))
    page.goto(f"{live_server.url}{environment.get_absolute_url()}")
    windows = page.get_by_test_id("maintenance-windows")
    expect(windows).to_contain_text("No maintenance window is scheduled.")

    windows.get_by_test_id("schedule-window").click()
    form = page.get_by_test_id("schedule-window-form")
    expect(form).to_contain_text(f"In your time zone, {ZONE}.")
    day = (datetime.now(ZoneInfo(ZONE)) + timedelta(days=2)).date()
    form.locator("input[name=starts_at]").fill(f"{day:%Y-%m-%d}T22:00")
    form.locator("input[name=ends_at]").fill(f"{day:%Y-%m-%d}T23:30")
    form.locator("textarea[name=reason]").fill("Tonight's upgrade")
    form.get_by_role("button", name="Confirm").click()

    row = page.get_by_test_id("maintenance-window")
    expect(row).to_contain_text(f"{day:%Y-%m-%d} 22:00 to 23:30 P")  # PST or PDT
    expect(row).to_contain_text("Scheduled")
    expect(row).to_contain_text("Tonight's upgrade")
    window = MaintenanceWindow.objects.get()
    local = datetime(day.year, day.month, day.day, 22, 0, tzinfo=ZoneInfo(ZONE))
    assert window.starts_at == local.astimezone(UTC)

    row.get_by_test_id("cancel-window").click()
    confirm = page.get_by_test_id("window-confirm")
    expect(confirm).to_contain_text("Cancel the maintenance window")
    confirm.get_by_label("Reason").fill("Moved to Friday")
    confirm.get_by_role("button", name="Cancel window").click()

    expect(page.get_by_test_id("maintenance-windows")).to_contain_text(
        "No maintenance window is scheduled."
    )
    window.refresh_from_db()
    assert window.state == WindowState.CANCELLED


def test_an_overlapping_window_is_refused_in_the_form_naming_the_other(
    page_in_los_angeles, live_server, environment, manager
):
    from django.utils import timezone

    from environments import windows

    starts = timezone.now() + timedelta(days=1)
    windows.schedule(
        environment, manager, starts_at=starts, ends_at=starts + timedelta(hours=2), reason="First"
    )
    page = page_in_los_angeles
    page.goto(f"{live_server.url}/environments/{environment.slug}/windows/schedule/")
    local = timezone.localtime(starts + timedelta(hours=1), ZoneInfo(ZONE))
    page.fill("input[name=starts_at]", f"{local:%Y-%m-%dT%H:%M}")
    page.fill("input[name=ends_at]", f"{local + timedelta(hours=1):%Y-%m-%dT%H:%M}")
    page.fill("textarea[name=reason]", "Second")
    page.get_by_role("button", name="Confirm").click()

    expect(page.get_by_test_id("schedule-refusal")).to_contain_text("overlaps another window")
    expect(page.get_by_test_id("schedule-refusal")).to_contain_text("First")
    assert MaintenanceWindow.objects.count() == 1
