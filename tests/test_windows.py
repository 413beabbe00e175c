"""Scheduled maintenance windows on a controllable clock: each function takes ``now``.

The windows lie two days ahead of the real clock, so that the tasks they enqueue for
their start, end and reminders never fall due in run_worker unless a test says so.
"""

import csv
import io
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from environments import operations, windows
from environments.models import (
    Environment,
    MaintenanceWindow,
    Notification,
    Operation,
    OperationKind,
    Outcome,
    Status,
    WindowState,
)
from environments.refusals import OperationRefused
from tests.conftest import committing, run_worker

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def schedule(environment, user, starts_at, ends_at=None, reason="Upgrade to 10.0.40", **kw):
    with committing():
        return windows.schedule(
            environment,
            user,
            starts_at=starts_at,
            ends_at=ends_at or starts_at + HOUR,
            reason=reason,
            now=kw.pop("now", starts_at - 2 * HOUR),
            **kw,
        )


def start(window, now):
    with committing():
        return windows.start_window(window.pk, now=now)


def end(window, now):
    with committing():
        return windows.end_window(window.pk, now=now)


def refreshed(obj):
    obj.refresh_from_db()
    return obj


# --- Scheduling --------------------------------------------------------------------------


def test_a_scheduled_window_is_the_environments_next_and_moves_its_revision(
    environment, manager, t0
):
    revision = environment.revision
    window = schedule(environment, manager, t0)

    environment.refresh_from_db()
    assert window.state == WindowState.SCHEDULED
    assert (environment.window_starts_at, environment.window_ends_at) == (t0, t0 + HOUR)
    assert environment.revision > revision


def test_windows_of_one_environment_never_overlap_and_the_refusal_names_the_other(
    environment, manager, owner, t0
):
    schedule(environment, manager, t0, reason="Upgrade to 10.0.40")

    with pytest.raises(OperationRefused) as refused:
        schedule(environment, owner, t0 + HOUR / 2, t0 + 2 * HOUR, reason="Index rebuild")

    assert refused.value.code == OperationRefused.INVALID
    assert "overlaps another window" in refused.value.message
    assert "Upgrade to 10.0.40" in refused.value.message and "mona" in refused.value.message
    assert MaintenanceWindow.objects.count() == 1


def test_back_to_back_windows_and_windows_of_other_environments_do_not_overlap(
    project, environment, manager, t0
):
    from tests.conftest import make_environment

    schedule(environment, manager, t0)
    schedule(environment, manager, t0 + HOUR, now=t0 - 2 * HOUR)
    schedule(make_environment(project), manager, t0)

    assert MaintenanceWindow.objects.count() == 3


def test_a_cancelled_window_frees_its_time(environment, manager, t0):
    window = schedule(environment, manager, t0)
    windows.cancel(window, manager, reason="Moved", now=t0 - HOUR)

    schedule(environment, manager, t0)

    assert MaintenanceWindow.objects.filter(state=WindowState.SCHEDULED).count() == 1


@pytest.mark.parametrize(
    "starts, ends, message",
    [
        (-timedelta(minutes=1), HOUR, "The start must be in the future."),
        (timedelta(days=91), HOUR, "The start may be at most 90 days ahead."),
        (HOUR, -timedelta(minutes=1), "The end must come after the start."),
        (HOUR, timedelta(hours=24, minutes=1), "A window lasts at most 24 hours."),
    ],
)
def test_a_window_starts_in_the_future_at_most_90_days_ahead_and_lasts_at_most_24_hours(
    environment, manager, starts, ends, message
):
    now = timezone.now()
    with pytest.raises(OperationRefused, match=message):
        windows.schedule(
            environment,
            manager,
            starts_at=now + starts,
            ends_at=now + starts + ends,
            reason="x",
            now=now,
        )


def test_the_longest_window_is_a_setting(environment, manager, settings, t0):
    settings.WINDOW_MAX_HOURS = 48
    window = schedule(environment, manager, t0, t0 + timedelta(hours=30))
    assert window.ends_at - window.starts_at == timedelta(hours=30)


def test_team_members_may_not_schedule_cancel_or_end_windows(
    client, environment, manager, member, t0
):
    with pytest.raises(OperationRefused) as refused:
        schedule(environment, member, t0)
    assert refused.value.code == OperationRefused.FORBIDDEN

    window = schedule(environment, manager, t0)
    with pytest.raises(OperationRefused):
        windows.cancel(window, member, reason="Moved", now=t0 - HOUR)
    client.force_login(member)
    for name in ("window-schedule", "window-cancel", "window-end"):
        args = [environment.slug] + ([window.pk] if name != "window-schedule" else [])
        assert client.post(reverse(name, args=args)).status_code == 403


# --- Starting and ending ---------------------------------------------------------------------


def test_a_window_turns_maintenance_mode_on_and_off_through_the_operations_marked_scheduled(
    environment, manager, t0
):
    window = schedule(environment, manager, t0)

    start(window, t0)
    environment.refresh_from_db()
    assert refreshed(window).state == WindowState.ACTIVE
    assert environment.status == Status.SERVICING
    run_worker()
    assert refreshed(environment).status == Status.IN_MAINTENANCE

    end(window, t0 + HOUR)
    run_worker()

    assert refreshed(environment).status == Status.DEPLOYED
    assert refreshed(window).state == WindowState.COMPLETED
    on, off = Operation.objects.maintain().order_by("started_at", "id")
    assert (on.kind, off.kind) == (
        OperationKind.ENABLE_MAINTENANCE,
        OperationKind.DISABLE_MAINTENANCE,
    )
    for operation in (on, off):
        assert operation.window == window
        assert operation.requested_by == manager
        assert operation.via == windows.VIA
        assert operation.outcome == Outcome.SUCCEEDED
    assert "Upgrade to 10.0.40" in on.reason
    assert environment.window_starts_at is None


def test_a_window_starts_once_however_often_it_is_asked(environment, manager, t0):
    window = schedule(environment, manager, t0)

    start(window, t0)
    start(window, t0 + timedelta(seconds=5))
    with committing():
        windows.sweep(now=t0 + timedelta(seconds=10))

    assert Operation.objects.filter(kind=OperationKind.ENABLE_MAINTENANCE).count() == 1


def test_a_window_does_not_start_before_its_time(environment, manager, t0):
    window = schedule(environment, manager, t0)
    start(window, t0 - timedelta(seconds=1))
    assert refreshed(window).state == WindowState.SCHEDULED
    assert not Operation.objects.maintain().exists()


@pytest.mark.parametrize("blocker", ["busy", "failed", "in_maintenance"])
def test_a_window_that_cannot_start_waits_then_is_missed_after_15_minutes_and_people_are_told(
    environment, manager, owner, maint, start, fail_driver, blocker, t0
):
    for user, address in ((manager, "mona@example.com"), (owner, "alice@example.com")):
        user.email = address
        user.save()
    maint.email = "maya@example.com"
    maint.save()
    if blocker == "busy":
        start(OperationKind.RESTART_SERVICE, environment, owner, service_kind="aos")
    elif blocker == "failed":
        fail_driver(f"{environment.slug} restart_service")
        start(OperationKind.RESTART_SERVICE, environment, owner, service_kind="aos")
        run_worker()
    else:
        start(OperationKind.ENABLE_MAINTENANCE, environment, owner)
        run_worker()
    mail.outbox.clear()
    window = schedule(environment, manager, t0)

    windows.start_window(window.pk, now=t0)
    assert refreshed(window).state == WindowState.SCHEDULED
    assert window.note.startswith("Waiting:")
    windows.start_window(window.pk, now=t0 + timedelta(minutes=14))
    assert refreshed(window).state == WindowState.SCHEDULED

    with committing():
        windows.start_window(window.pk, now=t0 + timedelta(minutes=15))
    run_worker()

    assert refreshed(window).state == WindowState.MISSED
    assert window.note.startswith("Missed:")
    assert not Operation.objects.maintain().filter(window=window).exists()
    missed = [message for message in mail.outbox if "window missed" in message.subject]
    told = [address for message in missed for address in message.to]
    assert sorted(told) == ["alice@example.com", "maya@example.com", "mona@example.com"]
    assert refreshed(environment).window_starts_at is None


def test_a_retry_is_enqueued_while_the_window_waits(environment, manager, owner, start, t0):
    from django_tasks_db.models import DBTaskResult

    start(OperationKind.RESTART_SERVICE, environment, owner, service_kind="aos")
    window = schedule(environment, manager, t0)
    before = DBTaskResult.objects.filter(task_path__endswith="start_maintenance_window").count()

    with committing():
        windows.start_window(window.pk, now=t0)

    retries = DBTaskResult.objects.filter(task_path__endswith="start_maintenance_window")
    assert retries.count() == before + 1
    assert retries.order_by("-enqueued_at").first().run_after == t0 + timedelta(seconds=30)


def test_a_window_whose_whole_time_passed_unseen_is_missed(environment, manager, t0):
    window = schedule(environment, manager, t0)
    start(window, t0 + 2 * HOUR)
    assert refreshed(window).state == WindowState.MISSED
    assert "did not run between the start and the end" in window.note


def test_disabling_maintenance_mode_by_hand_during_a_window_ends_the_window(
    environment, manager, owner, t0
):
    window = schedule(environment, manager, t0)
    start(window, t0)
    run_worker()

    with committing():
        operations.disable_maintenance(environment, owner, reason="Done sooner")
    run_worker()

    window.refresh_from_db()
    assert window.state == WindowState.COMPLETED
    assert window.ended_by == owner
    assert "Ended early" in window.note
    assert refreshed(environment).status == Status.DEPLOYED
    # Its end, when it comes, finds nothing to do.
    end(window, t0 + HOUR)
    assert Operation.objects.filter(kind=OperationKind.DISABLE_MAINTENANCE).count() == 1


def test_a_window_is_cancelled_before_it_starts_and_then_never_starts(environment, manager, t0):
    window = schedule(environment, manager, t0)
    windows.cancel(window, manager, reason="Moved", now=t0 - HOUR)

    start(window, t0)

    assert refreshed(window).state == WindowState.CANCELLED
    assert window.ended_by == manager
    assert not Operation.objects.maintain().exists()


def test_an_active_window_cannot_be_cancelled_but_can_be_ended_early(environment, manager, t0):
    window = schedule(environment, manager, t0)
    start(window, t0)
    run_worker()

    with pytest.raises(OperationRefused):
        windows.cancel(window, manager, reason="Moved", now=t0 + timedelta(minutes=5))
    with committing():
        windows.end_now(window, manager)
    run_worker()

    assert refreshed(window).state == WindowState.COMPLETED
    assert refreshed(environment).status == Status.DEPLOYED
    off = Operation.objects.get(kind=OperationKind.DISABLE_MAINTENANCE)
    assert off.window == window and off.via == ""


def test_ending_waits_for_a_running_operation_and_then_gives_up_telling_the_managers(
    environment, manager, owner, fail_driver, t0
):
    owner.email = "alice@example.com"
    owner.save()
    fail_driver(f"{environment.slug} set_maintenance_mode")
    window = schedule(environment, manager, t0)
    start(window, t0)
    run_worker()
    assert refreshed(environment).status == Status.FAILED
    mail.outbox.clear()

    end(window, t0 + HOUR)
    assert refreshed(window).state == WindowState.ACTIVE
    end(window, t0 + HOUR + timedelta(minutes=15))
    run_worker()

    assert refreshed(window).state == WindowState.COMPLETED
    assert "could not be turned off" in window.note
    assert [m.subject for m in mail.outbox] == [f"Maintenance mode is still on: {environment.name}"]


def test_the_watchdog_sweep_starts_and_ends_what_is_due(environment, manager, t0):
    window = schedule(environment, manager, t0)
    with committing():
        started = windows.sweep(now=t0 + timedelta(seconds=30))
    run_worker()
    assert [w.state for w in started] == [WindowState.ACTIVE]

    with committing():
        windows.sweep(now=t0 + HOUR + timedelta(seconds=30))
    run_worker()

    assert refreshed(window).state == WindowState.COMPLETED
    assert refreshed(environment).status == Status.DEPLOYED


# --- Reminders -----------------------------------------------------------------------------


def test_reminders_go_out_24_hours_and_1_hour_before_once_each(environment, manager, maint, t0):
    maint.email = "maya@example.com"
    maint.save()
    window = schedule(environment, manager, t0)

    for now in (t0 - timedelta(hours=25), t0 - timedelta(hours=24), t0 - timedelta(hours=23)):
        windows.remind(window.pk, now=now)
    with committing():
        windows.sweep(now=t0 - timedelta(minutes=59))
        windows.remind(window.pk, now=t0 - timedelta(minutes=30))
    run_worker()

    keys = sorted(Notification.objects.values_list("key", flat=True))
    assert keys == [f"window-reminder:{window.pk}:3600", f"window-reminder:{window.pk}:86400"]


def test_a_window_scheduled_within_the_hour_sends_one_reminder_not_two(environment, manager, t0):
    window = schedule(environment, manager, t0, now=t0 - timedelta(minutes=30))
    windows.remind(window.pk, now=t0 - timedelta(minutes=30))
    windows.remind(window.pk, now=t0 - timedelta(minutes=29))
    assert list(Notification.objects.values_list("key", flat=True)) == [
        f"window-reminder:{window.pk}:3600"
    ]


def test_the_reminders_lead_times_are_a_setting(environment, manager, settings, t0):
    settings.WINDOW_REMINDER_HOURS = [2]
    window = schedule(environment, manager, t0)
    assert windows.remind(window.pk, now=t0 - timedelta(hours=3)) is None
    assert windows.remind(window.pk, now=t0 - timedelta(hours=2)) is not None


# --- Where people see it ---------------------------------------------------------------------


def test_forward_auth_carries_the_window_before_and_during_it_and_not_after(
    client, environment, manager, maint, t0
):
    client.force_login(maint)
    url = reverse("environment-auth", args=[environment.slug])
    assert "X-Portal-Maintenance-Window" not in client.get(url)

    window = schedule(environment, manager, t0)
    expected = f"{t0:%Y-%m-%dT%H:%M:00Z}/{t0 + HOUR:%Y-%m-%dT%H:%M:00Z}"
    assert client.get(url)["X-Portal-Maintenance-Window"] == expected
    start(window, t0)
    run_worker()
    response = client.get(url)
    assert response.status_code == 204
    assert response["X-Portal-Maintenance-Window"] == expected

    end(window, t0 + HOUR)
    run_worker()
    assert "X-Portal-Maintenance-Window" not in client.get(url)


def test_forward_auth_names_the_next_window_when_there_are_several(
    client, environment, manager, maint, t0
):
    schedule(environment, manager, t0 + 3 * HOUR)
    schedule(environment, manager, t0, now=t0 - 2 * HOUR)
    client.force_login(maint)
    response = client.get(reverse("environment-auth", args=[environment.slug]))
    assert response["X-Portal-Maintenance-Window"].startswith(f"{t0:%Y-%m-%dT%H:%M}")


def test_forward_auth_reads_the_window_from_the_environment_row_within_three_queries(
    client, environment, manager, maint, t0, django_assert_max_num_queries
):
    schedule(environment, manager, t0)
    client.force_login(maint)
    url = reverse("environment-auth", args=[environment.slug])
    client.get(url)
    with django_assert_max_num_queries(3):
        response = client.get(url)
    assert response["X-Portal-Maintenance-Window"]


def test_the_sign_in_refusal_says_when_maintenance_is_planned_to_end(
    client, environment, manager, member, t0
):
    from environments.models import EnvironmentRole, EnvironmentRoleKind

    EnvironmentRole.objects.create(
        user=member, environment=environment, role=EnvironmentRoleKind.USER
    )
    now = timezone.now()
    window = schedule(environment, manager, now + timedelta(minutes=1), now + HOUR, now=now)
    start(window, now + timedelta(minutes=1))
    run_worker()
    client.force_login(member)

    response = client.get(reverse("environment-sign-in", args=[environment.slug]))

    assert response.status_code == 403
    planned = timezone.localtime(window.ends_at)
    assert f"planned to end at <strong>{planned:%Y-%m-%d %H:%M} UTC" in response.content.decode()


def test_the_environment_row_keeps_the_next_open_window(environment, manager, t0):
    first = schedule(environment, manager, t0)
    schedule(environment, manager, t0 + 5 * HOUR, now=t0 - 2 * HOUR)
    windows.cancel(first, manager, reason="Moved", now=t0 - HOUR)

    environment = Environment.objects.get(pk=environment.pk)
    assert environment.window_starts_at == t0 + 5 * HOUR


def test_the_history_marks_the_windows_rows_as_scheduled_by_their_scheduler(
    client, environment, manager, member, t0
):
    window = schedule(environment, manager, t0)
    start(window, t0)
    client.force_login(member)
    page = client.get(reverse("environment-history", args=[environment.slug])).content.decode()
    assert 'mona <span class="hint">via Scheduled maintenance window</span>' in page


def test_cancel_windows_confirm_step_reads_cancel_window_and_keep_window(
    as_manager, environment, manager, t0
):
    window = schedule(environment, manager, t0)

    body = as_manager.get(reverse("window-cancel", args=[environment.slug, window.pk])).content
    body = body.decode()

    assert '<button type="submit" class="primary">Cancel window</button>' in body
    assert re.search(r'<a class="button" href="[^"]+" data-close>Keep window</a>', body)
    assert ">Confirm<" not in body


# --- The schedule page, and Start now ---------------------------------------------------------


def schedule_page(client, environment, **data):
    url = reverse("window-schedule", args=[environment.slug])
    with committing():
        return client.post(url, {"reason": "Hotfix", "notify_users": "on", **data})


def test_schedule_page_has_an_h1_and_ties_each_error_to_its_field_focusing_the_first(
    as_manager, environment
):
    url = reverse("window-schedule", args=[environment.slug])
    assert "<h1>Schedule maintenance mode on Demo sandbox</h1>" in as_manager.get(url).text

    response = as_manager.post(url, {"start": "later", "starts_at": "soon"})

    assert response.status_code == 400
    fields = re.findall(r"<(?:input|textarea)[^>]*aria-invalid[^>]*>", response.text)
    assert [re.search(r'name="(\w+)"', f).group(1) for f in fields] == [
        "starts_at",
        "ends_at",
        "reason",
    ]
    for field in fields:
        name = re.search(r'id="id_(\w+)"', field).group(1)
        assert re.search(rf'aria-describedby="[^"]*\bid_{name}_error\b', field)
        assert f'<div class="field-error" id="id_{name}_error">' in response.text
    assert "autofocus" in fields[0] and not any("autofocus" in f for f in fields[1:])


def test_start_now_turns_maintenance_on_at_once_and_off_after_its_hours(
    as_manager, environment, manager
):
    before = timezone.now()
    response = schedule_page(as_manager, environment, start="now", hours="3")

    assert response.status_code == 302
    window = MaintenanceWindow.objects.get()
    assert window.state == WindowState.ACTIVE and window.started_at >= before
    assert window.ends_at - window.starts_at == 3 * HOUR
    enable = Operation.objects.get(kind=OperationKind.ENABLE_MAINTENANCE)
    assert enable.window == window and enable.via == windows.VIA
    run_worker()
    assert refreshed(environment).status == Status.IN_MAINTENANCE

    end(window, window.ends_at)
    run_worker()
    assert refreshed(environment).status == Status.DEPLOYED
    assert refreshed(window).state == WindowState.COMPLETED


def test_start_now_is_refused_and_keeps_nothing_while_another_operation_runs(
    as_manager, environment, manager, start
):
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")

    response = schedule_page(as_manager, environment, start="now", hours="2")

    assert response.status_code == 409
    assert 'data-testid="schedule-refusal"' in response.text
    assert not MaintenanceWindow.objects.exists()
    assert not Operation.objects.filter(kind=OperationKind.ENABLE_MAINTENANCE).exists()


def test_start_now_needs_its_hours_within_the_longest_window(as_manager, environment, settings):
    settings.WINDOW_MAX_HOURS = 12
    for hours, message in [("", "Say for how many hours"), ("13", "less than or equal to 12")]:
        response = schedule_page(as_manager, environment, start="now", hours=hours)
        assert response.status_code == 400
        assert message in response.text
        assert re.search(r'name="hours"[^>]*autofocus', response.text)
    assert not MaintenanceWindow.objects.exists()


def test_a_window_scheduled_for_later_still_needs_a_start_ahead(as_manager, environment):
    past = timezone.localtime() - HOUR
    response = schedule_page(
        as_manager,
        environment,
        start="later",
        starts_at=f"{past:%Y-%m-%dT%H:%M}",
        ends_at=f"{past + 2 * HOUR:%Y-%m-%dT%H:%M}",
    )
    assert response.status_code == 400
    assert "The start must be in the future." in response.text
    assert not MaintenanceWindow.objects.exists()


# --- History rows of scheduling and cancelling ------------------------------------------


def window_rows(environment):
    return list(
        environment.operations.filter(
            kind__in=[OperationKind.SCHEDULE_WINDOW, OperationKind.CANCEL_WINDOW]
        )
        .order_by("started_at", "id")
        .values_list("kind", "requested_by__username", "reason", "outcome", "window_id")
    )


def test_scheduling_and_cancelling_on_the_page_write_finished_history_rows_with_the_reasons(
    client, environment, manager, member
):
    client.force_login(manager)
    day = (timezone.now() + timedelta(days=3)).date()
    with committing():
        response = client.post(
            reverse("window-schedule", args=[environment.slug]),
            {
                "starts_at": f"{day:%Y-%m-%d}T22:00",
                "ends_at": f"{day:%Y-%m-%d}T23:00",
                "reason": "Upgrade to 10.0.40",
            },
        )
    assert response.status_code == 302, response.content.decode()
    window = MaintenanceWindow.objects.get()
    assert environment.running_operation() is None
    cancel_url = reverse("window-cancel", args=[environment.slug, window.pk])

    refused = client.post(cancel_url, {"reason": "  "})
    assert refused.status_code == 400 and "Give a reason" in refused.content.decode()
    assert refreshed(window).state == WindowState.SCHEDULED
    with committing():
        assert client.post(cancel_url, {"reason": "Moved to Friday"}).status_code == 302

    assert refreshed(window).state == WindowState.CANCELLED
    assert window_rows(environment) == [
        (OperationKind.SCHEDULE_WINDOW, "mona", "Upgrade to 10.0.40", "succeeded", window.pk),
        (OperationKind.CANCEL_WINDOW, "mona", "Moved to Friday", "succeeded", window.pk),
    ]
    assert not Operation.objects.active().exists()
    assert refreshed(environment).status == Status.DEPLOYED
    period = f"{day:%Y-%m-%d} 22:00 to 23:00 UTC"
    client.force_login(member)
    history = client.get(reverse("environment-history", args=[environment.slug]))
    page = history.content.decode()
    assert f"Maintenance window scheduled: {period}" in page
    assert f"Maintenance window cancelled: {period}" in page
    cancelled = environment.operations.get(kind=OperationKind.CANCEL_WINDOW)
    detail = client.get(cancelled.get_absolute_url()).content.decode()
    assert "Moved to Friday" in detail
    export = client.get(reverse("history-csv"), {"type": "windows"})
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))[1:]
    cells = [cell for row in rows for cell in row]
    assert len(rows) == 2 and f"Maintenance window cancelled: {period}" in cells
    assert "Moved to Friday" in cells and "Upgrade to 10.0.40" in cells


def test_a_refused_cancel_writes_no_history_row(environment, manager, t0):
    window = schedule(environment, manager, t0)
    start(window, t0)
    with pytest.raises(OperationRefused):
        windows.cancel(window, manager, reason="Moved", now=t0 + timedelta(minutes=5))
    assert [row[0] for row in window_rows(environment)] == [OperationKind.SCHEDULE_WINDOW]


def _active_window_whose_end_waits(environment, manager, t0):
    """A window that started and whose end came while the environment was busy."""
    first = schedule(environment, manager, t0)
    start(first, t0)
    run_worker()
    assert refreshed(environment).status == Status.IN_MAINTENANCE
    second = schedule(environment, manager, t0 + HOUR, now=t0)
    return first, second


def test_the_next_window_waits_while_the_one_before_it_has_not_ended(environment, manager, t0):
    first, second = _active_window_whose_end_waits(environment, manager, t0)

    start(second, t0 + HOUR)

    assert refreshed(first).state == WindowState.ACTIVE
    second.refresh_from_db()
    assert second.state == WindowState.SCHEDULED
    assert second.note.startswith("Waiting: The window before it")
    assert not second.operations.filter(kind=OperationKind.ENABLE_MAINTENANCE).exists()


def test_a_window_left_active_with_maintenance_off_is_completed_before_the_next_starts(
    environment, manager, t0
):
    """Its Enable failed and was aborted meanwhile: no Disable was written to end it."""
    first, second = _active_window_whose_end_waits(environment, manager, t0)
    Environment.objects.filter(pk=environment.pk).update(
        status=Status.DEPLOYED, maintenance_mode=False
    )

    start(second, t0 + HOUR)

    first.refresh_from_db()
    assert first.state == WindowState.COMPLETED and first.ended_at == t0 + HOUR
    assert first.note == "Maintenance mode was already off."
    assert refreshed(second).state == WindowState.ACTIVE
    assert MaintenanceWindow.objects.filter(state=WindowState.ACTIVE).count() == 1


def _window_whose_end_waits_after_an_abort(environment, manager, t0):
    """A window that started; its end came while the environment was busy, and the
    environment was then brought back to Deployed (its Enable failed and was aborted)."""
    first = schedule(environment, manager, t0)
    start(first, t0)
    run_worker()
    Environment.objects.filter(pk=environment.pk).update(
        status=Status.DEPLOYED, maintenance_mode=False
    )
    return first


def test_start_now_completes_a_window_whose_end_still_waits_never_two_active(
    environment, manager, t0
):
    first = _window_whose_end_waits_after_an_abort(environment, manager, t0)

    with committing():
        now = windows.start_now(
            environment, manager, hours=2, reason="Hotfix", now=t0 + HOUR + timedelta(minutes=1)
        )

    assert refreshed(first).state == WindowState.COMPLETED
    assert refreshed(now).state == WindowState.ACTIVE
    assert MaintenanceWindow.objects.filter(state=WindowState.ACTIVE).count() == 1


def test_a_late_window_end_leaves_on_the_maintenance_mode_turned_on_since(environment, manager, t0):
    first = _window_whose_end_waits_after_an_abort(environment, manager, t0)
    with committing():
        operations.enable_maintenance(refreshed(environment), manager, reason="By hand")
    run_worker()
    assert refreshed(environment).status == Status.IN_MAINTENANCE

    end(first, t0 + HOUR + timedelta(minutes=2))

    first.refresh_from_db()
    assert first.state == WindowState.COMPLETED
    assert first.note == "Maintenance mode was turned on again since: left on."
    assert refreshed(environment).status == Status.IN_MAINTENANCE
    assert not first.operations.filter(kind=OperationKind.DISABLE_MAINTENANCE).exists()
