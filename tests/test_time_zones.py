"""Times are entered and shown in the viewer's time zone, and stored in UTC: the user's
setting, else the browser's (the tz cookie), else UTC."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from environments.forms import ScheduleWindowForm
from environments.models import (
    MaintenanceWindow,
    NotificationKind,
    NotificationOptOut,
    UserSettings,
)

pytestmark = pytest.mark.django_db


def local_input(moment):
    return moment.strftime("%Y-%m-%dT%H:%M")


def test_a_user_in_utc_minus_8_schedules_0200_local_and_it_is_stored_as_1000_utc(
    client, environment, manager
):
    UserSettings.objects.create(user=manager, time_zone="Etc/GMT+8")  # UTC-8 all year
    client.force_login(manager)
    day = (timezone.now() + timedelta(days=3)).date()

    response = client.post(
        reverse("window-schedule", args=[environment.slug]),
        {
            "starts_at": f"{day:%Y-%m-%d}T02:00",
            "ends_at": f"{day:%Y-%m-%d}T03:30",
            "reason": "Night upgrade",
            "notify_users": "on",
        },
    )

    assert response.status_code == 302, response.content.decode()
    window = MaintenanceWindow.objects.get()
    assert window.starts_at == datetime(day.year, day.month, day.day, 10, 0, tzinfo=UTC)
    assert window.ends_at == datetime(day.year, day.month, day.day, 11, 30, tzinfo=UTC)
    assert window.notify_users
    page = client.get(reverse("window-list", args=[environment.slug])).content.decode()
    assert f"{day:%Y-%m-%d} 02:00" in page


def test_pacific_time_in_winter_is_utc_minus_8_in_the_form():
    los_angeles = ZoneInfo("America/Los_Angeles")
    now = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
    with timezone.override(los_angeles):
        form = ScheduleWindowForm(
            {"starts_at": "2027-01-15T02:00", "ends_at": "2027-01-15T04:00", "reason": "x"},
            now=now,
        )
        assert form.is_valid(), form.errors
    assert form.cleaned_data["starts_at"] == datetime(2027, 1, 15, 10, 0, tzinfo=UTC)


def test_a_time_that_does_not_exist_locally_is_refused(settings):
    # 02:30 on the night clocks in Los Angeles go forward does not exist.
    now = datetime(2027, 3, 1, tzinfo=UTC)
    with timezone.override(ZoneInfo("America/Los_Angeles")):
        form = ScheduleWindowForm(
            {"starts_at": "2027-03-14T02:30", "ends_at": "2027-03-14T04:00", "reason": "x"},
            now=now,
        )
        assert not form.is_valid()
        assert "starts_at" in form.errors


def test_the_browsers_time_zone_is_used_when_the_user_chose_none(client, manager):
    client.force_login(manager)
    client.cookies["tz"] = "Asia/Kolkata"
    page = client.get(reverse("user-settings")).content.decode()
    assert 'data-testid="current-zone">Asia/Kolkata<' in page


def test_the_users_setting_wins_over_the_browser(client, manager):
    UserSettings.objects.create(user=manager, time_zone="Europe/Paris")
    client.force_login(manager)
    client.cookies["tz"] = "Asia/Kolkata"
    page = client.get(reverse("user-settings")).content.decode()
    assert 'data-testid="current-zone">Europe/Paris<' in page


@pytest.mark.parametrize("cookie", ["Mars/Olympus_Mons", "../../etc/passwd", ""])
def test_an_unknown_zone_from_the_browser_is_ignored(client, manager, cookie):
    client.force_login(manager)
    client.cookies["tz"] = cookie
    page = client.get(reverse("user-settings")).content.decode()
    assert 'data-testid="current-zone">UTC<' in page


def test_the_settings_page_saves_the_time_zone_and_the_mails_wanted(client, manager):
    client.force_login(manager)
    wanted = [kind for kind in NotificationKind.values if kind != NotificationKind.WINDOW_REMINDER]

    response = client.post(
        reverse("user-settings"), {"time_zone": "America/New_York", "mails": wanted}
    )

    assert response.status_code == 302
    assert UserSettings.objects.get(user=manager).time_zone == "America/New_York"
    assert list(NotificationOptOut.objects.values_list("kind", flat=True)) == [
        NotificationKind.WINDOW_REMINDER
    ]
    # The same session sees its new zone at once, without a query for it.
    page = client.get(reverse("user-settings")).content.decode()
    assert 'data-testid="current-zone">America/New_York<' in page
    # Wanting every mail again removes the opt-out.
    client.post(reverse("user-settings"), {"time_zone": "", "mails": NotificationKind.values})
    assert not NotificationOptOut.objects.exists()


def test_the_settings_page_refuses_a_zone_that_does_not_exist(client, manager):
    client.force_login(manager)
    response = client.post(reverse("user-settings"), {"time_zone": "Nowhere/Town", "mails": []})
    assert response.status_code == 400
    assert not UserSettings.objects.exclude(time_zone="").exists()


def test_the_chosen_zone_comes_with_the_session_and_costs_no_query(
    client, environment, maint, django_assert_max_num_queries
):
    UserSettings.objects.create(user=maint, time_zone="Europe/Paris")
    client.force_login(maint)
    url = reverse("environment-auth", args=[environment.slug])
    client.get(url)
    # The session; the user; the environment (the role is in the cache).
    with django_assert_max_num_queries(3):
        assert client.get(url).status_code == 204


def test_the_detection_script_is_a_static_file_not_inline(settings):
    script = (settings.BASE_DIR / "static" / "js" / "time-zone.js").read_text()
    assert "Intl.DateTimeFormat().resolvedOptions().timeZone" in script
    assert "SameSite=Lax" in script
