"""The iCalendar feed of an environment's maintenance windows, at a secret address per
user."""

import logging
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from environments import windows
from environments.models import UserSettings
from environments.windows.calendar import escape, fold, ics
from tests.helpers import user_page_form

pytestmark = pytest.mark.django_db


@pytest.fixture
def planned(environment, manager):
    now = timezone.now()
    starts = (now + timedelta(days=1)).replace(hour=22, minute=0, second=0, microsecond=0)
    return windows.schedule(
        environment,
        manager,
        starts_at=starts,
        ends_at=starts + timedelta(hours=2),
        reason="Upgrade; then checks, and a reindex",
        now=now,
    )


def feed_url(user, environment):
    token = UserSettings.objects.get_or_create(user=user)[0].calendar_token
    return reverse("calendar-feed", args=[token, environment.slug])


def test_the_feed_lists_the_environments_windows_at_the_users_secret_address(
    client, environment, member, planned
):
    response = client.get(feed_url(member, environment))  # no session: calendar apps send none

    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    body = response.content.decode()
    assert body.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert body.endswith("END:VCALENDAR\r\n")
    assert "\n" not in body.replace("\r\n", "")
    assert f"DTSTART:{planned.starts_at:%Y%m%dT%H%M%S}Z\r\n" in body
    assert f"DTEND:{planned.ends_at:%Y%m%dT%H%M%S}Z\r\n" in body
    assert "SUMMARY:Maintenance mode: Demo sandbox\r\n" in body
    assert "Upgrade\\; then checks\\, and a reindex" in body
    assert "STATUS:CONFIRMED" in body
    assert f"UID:maintenance-window-{planned.pk}@127.0.0.1:8000" in body


def test_a_cancelled_window_stays_in_the_feed_as_cancelled(
    client, environment, manager, member, planned
):
    windows.cancel(planned, manager, reason="Moved")
    body = client.get(feed_url(member, environment)).content.decode()
    assert "STATUS:CANCELLED" in body


@pytest.mark.parametrize("who", ["outsider", "nobody"])
def test_the_feed_is_for_those_who_may_see_the_environment_and_a_token_that_exists(
    client, environment, outsider, planned, who
):
    if who == "outsider":
        url = feed_url(outsider, environment)
    else:
        url = reverse("calendar-feed", args=["not-a-token", environment.slug])
    assert client.get(url).status_code == 404


def test_an_inactive_users_feed_stops(client, environment, member, planned):
    url = feed_url(member, environment)
    member.is_active = False
    member.save()
    assert client.get(url).status_code == 404


def test_a_reactivated_user_does_not_get_their_old_address_back(
    client, environment, member, planned
):
    old = feed_url(member, environment)
    member.is_active = False
    member.save()
    member.is_active = True
    member.save()

    assert client.get(old).status_code == 404
    new = feed_url(member, environment)
    assert new != old and client.get(new).status_code == 200


def test_a_user_deactivated_and_reactivated_in_the_admin_does_not_get_their_old_address_back(
    client, environment, member, superuser, planned
):
    old = feed_url(member, environment)
    client.force_login(superuser)
    data = user_page_form(client, member)
    del data["is_active"]  # an unticked box is not sent
    page = reverse("admin:auth_user_change", args=[member.pk])
    assert client.post(page, data).status_code == 302
    data["is_active"] = "on"
    assert client.post(page, data).status_code == 302
    client.logout()

    member.refresh_from_db()
    assert member.is_active
    assert client.get(old).status_code == 404
    assert client.get(feed_url(member, environment)).status_code == 200


def test_a_new_address_ends_the_old_one(client, environment, member, planned):
    old = feed_url(member, environment)
    client.force_login(member)
    response = client.post(reverse("user-settings"), {"new_calendar_address": "1"})
    client.logout()

    assert response.status_code == 302
    assert client.get(old).status_code == 404
    assert client.get(feed_url(member, environment)).status_code == 200


def test_the_windows_page_shows_the_users_own_feed_address(client, environment, member, planned):
    client.force_login(member)
    page = client.get(reverse("window-list", args=[environment.slug])).content.decode()
    token = UserSettings.objects.get(user=member).calendar_token
    assert f"/calendar/{token}/demo-sandbox.ics" in page
    assert "Upgrade; then checks, and a reindex" in page


def test_text_is_escaped_and_long_lines_are_folded_at_75_octets_never_inside_a_character():
    assert escape("a\\b;c,d\ne") == "a\\\\b\\;c\\,d\\ne"
    line = "DESCRIPTION:" + "é" * 80
    folded = fold(line)
    parts = folded.split("\r\n")
    assert all(len(part.encode()) <= 75 for part in parts)
    assert all(part.startswith(" ") for part in parts[1:])
    assert "".join(part[1:] if i else part for i, part in enumerate(parts)) == line


def test_an_empty_feed_is_still_a_calendar(environment):
    body = ics(environment, [])
    assert body.count("BEGIN:VEVENT") == 0
    assert "X-WR-CALNAME:Maintenance: Demo sandbox" in body


def test_a_refused_feed_is_logged_without_its_token(client, environment, outsider, caplog):
    url = feed_url(outsider, environment)
    token = UserSettings.objects.get(user=outsider).calendar_token

    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get(url).status_code == 404

    logged = [r.getMessage() for r in caplog.records if r.name == "django.request"]
    assert logged == ["Not Found: /calendar/…/demo-sandbox.ics"]
    assert token not in caplog.text


def test_runservers_request_lines_show_no_calendar_token(caplog):
    # runserver's logger does not propagate; listen to it where it logs.
    server = logging.getLogger("django.server")
    server.addHandler(caplog.handler)
    try:
        server.info('"%s" %s %s', "GET /calendar/s3cret-token/demo.ics HTTP/1.1", "200", "512")
    finally:
        server.removeHandler(caplog.handler)
    assert caplog.records[-1].getMessage() == '"GET /calendar/…/demo.ics HTTP/1.1" 200 512'
