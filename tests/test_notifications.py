"""Mail reaches people: a real SMTP server on 127.0.0.1 (aiosmtpd) receives what the
task worker sends, and the tests read its recipients, subject and body."""

# ruff: noqa: F811 (the receivers' fixtures are imported from tests.receivers)

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from environments import windows
from environments.models import (
    AccessLevel,
    DatabaseAccount,
    DeliveryState,
    EnvironmentRole,
    EnvironmentRoleKind,
    Notification,
    NotificationKind,
    NotificationOptOut,
    OperationKind,
    UserSettings,
)
from environments.notify import notifications
from tests.conftest import committing, make_user, run_worker
from tests.live import free_port
from tests.receivers import smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def addresses(owner, manager, member, maint):
    for user in (owner, manager, member, maint):
        user.email = f"{user.username}@example.com"
        user.save()
    return {user.username: user.email for user in (owner, manager, member, maint)}


def subjects(box, address):
    return [mail.subject for mail in box.to(address)]


def test_the_requester_hears_by_mail_when_their_restart_finishes(
    smtp_server, environment, manager, addresses, start
):
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos", reason="slow")
    run_worker()

    (mail,) = smtp_server.mails
    assert mail.recipients == ["mona@example.com"]
    assert mail.subject == "Succeeded: Restart service: AOS on Demo sandbox"
    assert "Reason: slow" in mail.text
    assert "http://127.0.0.1:8000/environments/demo-sandbox/history/" in mail.text
    assert "<h1" in mail.html and "Restart service: AOS" in mail.html
    assert mail.message["Auto-Submitted"] == "auto-generated"


def test_a_failure_mail_carries_the_error_the_log_and_links_to_resume_rollback_and_abort(
    smtp_server, environment, manager, owner, addresses, start, fail_driver
):
    fail_driver(f"{environment.slug} restart_service")
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    run_worker()

    subject = "Failed: Restart service: AOS on Demo sandbox"
    assert subjects(smtp_server, "mona@example.com") == [subject]
    assert subjects(smtp_server, "alice@example.com") == [subject]
    (mail,) = smtp_server.to("mona@example.com")
    assert "Your operation failed" in mail.text
    assert "simulated failure" in mail.text.lower()
    assert "The driver log's last lines:" in mail.text
    for action in ("resume", "rollback", "abort"):
        url = f"http://127.0.0.1:8000/environments/demo-sandbox/maintain/{action}/"
        assert url in mail.text and url in mail.html
    assert "An operation failed" in smtp_server.to("alice@example.com")[0].text


def test_everyone_with_a_role_hears_when_maintenance_mode_turns_on_and_off(
    smtp_server, environment, owner, manager, member, maint, addresses, start
):
    start(OperationKind.ENABLE_MAINTENANCE, environment, owner, reason="patch")
    run_worker()
    start(OperationKind.DISABLE_MAINTENANCE, environment, owner)
    run_worker()

    on, off = "Maintenance mode is on: Demo sandbox", "Maintenance mode is off: Demo sandbox"
    assert subjects(smtp_server, "maya@example.com") == [on, off]
    assert subjects(smtp_server, "mona@example.com") == [on, off]
    # The requester hears of their own operation, once per operation.
    assert subjects(smtp_server, "alice@example.com") == [
        "Succeeded: Enable Maintenance mode on Demo sandbox",
        "Succeeded: Disable Maintenance mode on Demo sandbox",
    ]
    # A team member without a role on the environment is not one of its users.
    assert subjects(smtp_server, "tom@example.com") == []
    assert "Only System administrators and Maintenance mode users can sign in" in (
        smtp_server.to("maya@example.com")[0].text
    )


def test_each_user_can_opt_out_of_each_kind(
    smtp_server, environment, owner, manager, maint, addresses, start
):
    NotificationOptOut.objects.create(user=maint, kind=NotificationKind.MAINTENANCE_ON)
    NotificationOptOut.objects.create(user=owner, kind=NotificationKind.OPERATION_FINISHED)
    start(OperationKind.ENABLE_MAINTENANCE, environment, owner)
    run_worker()
    start(OperationKind.DISABLE_MAINTENANCE, environment, owner)
    run_worker()

    assert subjects(smtp_server, "maya@example.com") == ["Maintenance mode is off: Demo sandbox"]
    # Without their own operation's mail, the requester still hears of maintenance mode.
    assert subjects(smtp_server, "alice@example.com") == [
        "Maintenance mode is on: Demo sandbox",
        "Maintenance mode is off: Demo sandbox",
    ]


def test_inactive_users_and_users_without_an_address_get_no_mail(
    smtp_server, environment, owner, manager, maint, addresses, start
):
    maint.is_active = False
    maint.save()
    manager.email = ""
    manager.save()
    start(OperationKind.ENABLE_MAINTENANCE, environment, owner)
    run_worker()

    assert {address for mail in smtp_server.mails for address in mail.recipients} == {
        "alice@example.com"
    }


def test_mails_go_out_from_the_worker_never_inside_the_request(
    smtp_server, client, environment, manager, maint, addresses
):
    start_at = timezone.now() + timedelta(minutes=30)
    with committing():
        window = windows.schedule(
            environment,
            manager,
            starts_at=start_at,
            ends_at=start_at + timedelta(hours=1),
            reason="Upgrade",
        )
        windows.remind(window.pk)
    run_worker()
    assert subjects(smtp_server, "maya@example.com") == [
        f"Maintenance of Demo sandbox in 30 minutes: {window.period_text}"
    ]
    client.force_login(manager)

    with committing():
        response = client.post(
            reverse("window-cancel", args=[environment.slug, window.pk]), {"reason": "Moved"}
        )

    assert response.status_code == 302
    assert len(smtp_server.to("maya@example.com")) == 1
    assert Notification.objects.filter(state=DeliveryState.PENDING).count() == 1
    run_worker()
    assert subjects(smtp_server, "maya@example.com")[1:] == [
        "Maintenance window cancelled: Demo sandbox"
    ]


def test_a_window_scheduled_without_notifying_users_tells_only_owners_and_managers(
    smtp_server, environment, manager, owner, maint, addresses
):
    start_at = timezone.now() + timedelta(minutes=30)
    with committing():
        window = windows.schedule(
            environment,
            manager,
            starts_at=start_at,
            ends_at=start_at + timedelta(hours=1),
            reason="Quiet fix",
            notify_users=False,
        )
        windows.remind(window.pk)
    run_worker()

    told = sorted(address for mail in smtp_server.mails for address in mail.recipients)
    assert told == ["alice@example.com", "mona@example.com"]


def test_times_in_a_mail_are_in_the_recipients_time_zone(
    smtp_server, environment, manager, maint, addresses
):
    UserSettings.objects.create(user=maint, time_zone="Asia/Tokyo")
    start_at = (timezone.now() + timedelta(minutes=30)).replace(second=0, microsecond=0)
    with committing():
        window = windows.schedule(
            environment,
            manager,
            starts_at=start_at,
            ends_at=start_at + timedelta(hours=1),
            reason="Upgrade",
        )
        windows.remind(window.pk)
    run_worker()

    tokyo = timezone.localtime(start_at, timezone=__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    (mail,) = smtp_server.to("maya@example.com")
    assert f"From {tokyo:%Y-%m-%d %H:%M} JST" in mail.text
    assert "Times are in Asia/Tokyo" in mail.text
    assert f"{start_at:%Y-%m-%d %H:%M} UTC" in smtp_server.to("mona@example.com")[0].text


def test_the_requester_is_warned_30_minutes_before_their_database_account_expires(
    smtp_server, environment, manager, addresses, start
):
    start(OperationKind.REQUEST_ACCESS, environment, manager, level=AccessLevel.READ, reason="x")
    run_worker()
    account = DatabaseAccount.objects.get()
    assert account.applied_at is not None

    assert notifications.warn_expiring_access(now=account.expires_at - timedelta(minutes=31)) == []
    with committing():
        warned = notifications.warn_expiring_access(now=account.expires_at - timedelta(minutes=30))
        again = notifications.warn_expiring_access(now=account.expires_at - timedelta(minutes=20))
    run_worker()

    assert warned == [("databaseaccount", account.pk)] and again == []
    (mail,) = [m for m in smtp_server.to("mona@example.com") if "expires" in m.subject]
    assert mail.subject.startswith("Your access to Demo sandbox expires at")
    assert account.username in mail.text


def test_the_warning_task_waits_for_half_an_hour_before_the_expiry(environment, manager, start):
    from django_tasks_db.models import DBTaskResult

    start(OperationKind.REQUEST_ACCESS, environment, manager, level=AccessLevel.READ, reason="x")
    run_worker()
    account = DatabaseAccount.objects.get()

    task = DBTaskResult.objects.get(
        task_path="environments.notify.notifications.warn_access_expiring_task"
    )
    assert task.run_after == account.expires_at - timedelta(minutes=30)
    assert task.queue_name == "notify"


def test_a_mail_server_that_is_down_is_tried_again_later(
    smtp_server, settings, environment, manager, addresses, start
):
    settings.EMAIL_PORT = free_port()  # nothing listens there
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    run_worker()
    notification = Notification.objects.get()
    assert notification.state == DeliveryState.PENDING
    assert notification.attempts == 1 and "mail server" in notification.error
    assert smtp_server.mails == []

    settings.EMAIL_PORT = smtp_server.port
    notifications.send(notification.pk, now=notification.next_attempt_at)

    notification.refresh_from_db()
    assert notification.state == DeliveryState.DELIVERED
    assert subjects(smtp_server, "mona@example.com") == [
        "Succeeded: Restart service: AOS on Demo sandbox"
    ]


def test_a_role_change_in_the_admin_sends_no_mail(smtp_server, environment, owner, addresses):
    from environments.operations import record_role_change

    user = make_user("una", email="una@example.com")
    with committing():
        EnvironmentRole.objects.create(
            user=user, environment=environment, role=EnvironmentRoleKind.USER
        )
        record_role_change(environment, owner, user, EnvironmentRoleKind.USER, granted=True)
    run_worker()
    assert smtp_server.mails == []
    assert not Notification.objects.exists()


def test_a_failure_mails_driver_log_is_in_each_recipients_zone_labelled(
    smtp_server, environment, manager, owner, addresses, start, fail_driver, settings
):
    """The requester chose Asia/Tokyo; the owner chose nothing, so the portal's
    TIME_ZONE, named."""
    settings.TIME_ZONE = "America/New_York"
    UserSettings.objects.create(user=manager, time_zone="Asia/Tokyo")
    fail_driver(f"{environment.slug} restart_service")
    operation = start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    run_worker()

    line = operation.log_lines.last()
    for address, zone, label in (
        ("mona@example.com", "Asia/Tokyo", "JST"),
        ("alice@example.com", "America/New_York", "EST"),
    ):
        (mail,) = smtp_server.to(address)
        local = timezone.localtime(line.at, ZoneInfo(zone))
        assert f"{local:%Y-%m-%d %H:%M:%S} {label} {line.text}" in mail.text, mail.text
        assert f"{local:%Y-%m-%d %H:%M:%S} {label} {line.text}" in mail.html
        assert f"Times are in {zone}" in mail.text
