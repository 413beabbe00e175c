"""Scheduled maintenance windows: maintenance mode planned for a time.

A window turns maintenance mode on at its start and off at its end through
``environments.operations``, exactly as Enable and Disable Maintenance mode do (the same
lock, the same history rows), the rows marked as the window's and requested by whoever
scheduled it. Every change to a window happens here, in a transaction that locks the
environment row first (as operations do, so the two never wait on each other in the
other order), moves the environment's revision on and keeps its next window on its row
(Environment.window_starts_at / window_ends_at, which forward auth and the list read).

Timing: scheduling enqueues a task for the start, one for the end and one per reminder
(django-tasks ``run_after``), and the watchdog sweeps whatever is due, so a window
starts on time after the worker was down, and, because a start only happens while the
window is still Scheduled under the lock, never twice. A window that finds the
environment busy, Failed or already in maintenance tries again for
WINDOW_START_RETRY_MINUTES; then it is Missed, and people are told.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone
from django_tasks import task

from environments import operations
from environments.models import (
    Environment,
    MaintenanceWindow,
    OperationKind,
    Status,
    WindowState,
    check_period,
)
from environments.notify import notifications
from environments.operations import events
from environments.permissions import can_maintain
from environments.refusals import OperationRefused

#: How the history rows a window writes say where they came from (Operation.via).
VIA = "Scheduled maintenance window"
#: Refusals that waiting will not change.
_FINAL = (OperationRefused.FORBIDDEN, OperationRefused.INELIGIBLE)


def start_retry_period():
    return timedelta(minutes=settings.WINDOW_START_RETRY_MINUTES)


def reminder_leads():
    """The reminders' lead times in seconds, longest first."""
    return sorted({round(hours * 3600) for hours in settings.WINDOW_REMINDER_HOURS}, reverse=True)


# --- Scheduling and cancelling (people) --------------------------------------------------


def schedule(environment, user, *, starts_at, ends_at, reason, notify_users=True, now=None, via=""):
    """Schedule maintenance mode on ``environment`` from ``starts_at`` to ``ends_at``
    (``via`` as operations take it: how the history names the request's path)."""
    now = now or timezone.now()
    check_period(starts_at, ends_at, now)
    with transaction.atomic():
        locked = _lock(environment.pk)
        _check_may_maintain(locked, user)
        _check_no_overlap(locked, starts_at, ends_at)
        window = MaintenanceWindow.objects.create(
            environment=locked,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
            notify_users=notify_users,
            scheduled_by=user,
            created_at=now,
            changed_at=now,
        )
        operations.record_window_change(
            locked, window, user, OperationKind.SCHEDULE_WINDOW, reason, now=now, via=via
        )
        _changed(locked)
        transaction.on_commit(lambda: _enqueue_timers(window, now))
    return window


def start_now(environment, user, *, hours, reason, notify_users=True, now=None, via=""):
    """Turn maintenance mode on now, with an automatic end ``hours`` later: a window that
    starts at once. Its own path, so that schedule keeps its rule that a start lies
    ahead. Refused, and nothing kept, when maintenance mode cannot turn on now."""
    now = now or timezone.now()
    if not 0 < hours <= settings.WINDOW_MAX_HOURS:
        raise OperationRefused(
            f"A window lasts more than 0 and at most {settings.WINDOW_MAX_HOURS:g} hours.",
            OperationRefused.INVALID,
        )
    ends_at = now + timedelta(hours=hours)
    with transaction.atomic():
        locked = _lock(environment.pk)
        _check_may_maintain(locked, user)
        _check_no_overlap(locked, now, ends_at)
        window = MaintenanceWindow.objects.create(
            environment=locked,
            starts_at=now,
            ends_at=ends_at,
            reason=reason,
            notify_users=notify_users,
            scheduled_by=user,
            state=WindowState.ACTIVE,
            started_at=now,
            created_at=now,
            changed_at=now,
        )
        _end_the_window_before(locked, window, now)
        operations.enable_maintenance(
            locked, user, reason=f"Scheduled maintenance: {reason}", via=via or VIA, window=window
        )
        _changed(locked)
        transaction.on_commit(
            lambda: end_maintenance_window.using(run_after=ends_at).enqueue(window.pk)
        )
    return window


def cancel(window, user, *, reason, now=None, via=""):
    """Cancel a window before it starts, saying why (kept in the history). People who
    were reminded hear of it."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(window.environment_id)
        _check_may_maintain(locked, user)
        window = MaintenanceWindow.objects.select_for_update().get(pk=window.pk)
        if window.state != WindowState.SCHEDULED:
            raise OperationRefused(
                f"Only a window that has not started can be cancelled; this one is "
                f"{window.get_state_display()}.",
                OperationRefused.NOT_ALLOWED,
            )
        _end(window, WindowState.CANCELLED, now, by=user, note=f"Cancelled by {user}: {reason}")
        operations.record_window_change(
            locked, window, user, OperationKind.CANCEL_WINDOW, reason, now=now, via=via
        )
        if window.reminded_lead is not None:
            notifications.window_changed(window)
        _changed(locked)
    return window


def end_now(window, user, now=None, via=""):
    """End an active window early: maintenance mode is turned off now, by ``user``
    (``via`` as operations take it: how the history names the request's path)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(window.environment_id)
        _check_may_maintain(locked, user)
        window = MaintenanceWindow.objects.select_for_update().get(pk=window.pk)
        if window.state != WindowState.ACTIVE:
            raise OperationRefused(
                f"Only an active window can be ended; this one is {window.get_state_display()}.",
                OperationRefused.NOT_ALLOWED,
            )
        if locked.status == Status.IN_MAINTENANCE:
            # The operation ends the window (maintenance_mode_disabled, below).
            operations.disable_maintenance(
                locked,
                user,
                reason=f"Ended the maintenance window early: {window.reason}",
                window=window,
                via=via,
            )
        elif locked.status == Status.DEPLOYED:
            _end(window, WindowState.COMPLETED, now, by=user, note=f"Ended early by {user}.")
            _changed(locked)
        else:
            # Busy, or Failed: Disable Maintenance mode says why it cannot run now.
            operations.check_allowed(locked, user, "disable_maintenance")
    window.refresh_from_db()
    return window


# --- Start, end and reminders (tasks and the watchdog) ---------------------------------


def start_window(window_id, now=None, retry=True):
    """Turn maintenance mode on for a window that is due, once. While the environment
    cannot take it, try again (``retry``: enqueue the next try; the watchdog passes
    False, as it comes back by itself) until the retry period is over: then Missed."""
    now = now or timezone.now()
    with transaction.atomic():
        environment_id = _environment_of(window_id)
        locked = _lock(environment_id)
        window = MaintenanceWindow.objects.select_for_update().get(pk=window_id)
        if window.state != WindowState.SCHEDULED or window.starts_at > now:
            return window
        if now >= window.ends_at:
            _miss(
                window,
                locked,
                now,
                "The portal's task worker and watchdog did not run between the start and "
                "the end of the window.",
            )
            return window
        try:
            _end_the_window_before(locked, window, now)
            operations.enable_maintenance(
                locked,
                window.scheduled_by,
                reason=f"Scheduled maintenance: {window.reason}",
                via=VIA,
                window=window,
            )
        except OperationRefused as refused:
            if refused.code in _FINAL or now >= window.starts_at + start_retry_period():
                _miss(window, locked, now, refused.message)
            else:
                _wait(window, locked, now, refused.message, start_maintenance_window, retry)
            return window
        window.state = WindowState.ACTIVE
        window.started_at = now
        window.note = ""
        window.changed_at = now
        window.save(update_fields=["state", "started_at", "note", "changed_at"])
        _changed(locked)
    return window


def _end_the_window_before(environment, window, now):
    """A window whose end still waits for the environment (it was busy at the end) is
    over before the next one starts: never two active at once. When maintenance mode is
    off already it is Completed now; else the next one waits for its end."""
    before = environment.maintenance_windows.filter(state=WindowState.ACTIVE)
    before = before.exclude(pk=window.pk).first()
    if before is None:
        return
    if environment.status != Status.DEPLOYED:
        raise OperationRefused(
            f"The window before it ({before.period_text}) has not ended yet.",
            OperationRefused.NOT_ALLOWED,
        )
    _end(before, WindowState.COMPLETED, now, note="Maintenance mode was already off.")


def end_window(window_id, now=None, retry=True):
    """Turn maintenance mode off at the end of an active window. While the environment
    cannot take it, try again for the retry period; then the window ends, maintenance
    mode is left as it is and the managers are told to turn it off by hand."""
    now = now or timezone.now()
    with transaction.atomic():
        environment_id = _environment_of(window_id)
        locked = _lock(environment_id)
        window = MaintenanceWindow.objects.select_for_update().get(pk=window_id)
        if window.state != WindowState.ACTIVE or window.ends_at > now:
            return window
        if locked.status == Status.DEPLOYED:
            # Rolled back or aborted meanwhile: nothing is left to turn off.
            _end(window, WindowState.COMPLETED, now, note="Maintenance mode was already off.")
            _changed(locked)
            return window
        enables = locked.operations.filter(kind=OperationKind.ENABLE_MAINTENANCE)
        latest_enable = enables.order_by("-started_at", "-id").first()
        if latest_enable is not None and latest_enable.window_id != window.pk:
            # Turned on again since, by hand or by Start now, while this end waited (its
            # own Enable failed and was aborted): that maintenance is not this window's.
            note = "Maintenance mode was turned on again since: left on."
            _end(window, WindowState.COMPLETED, now, note=note)
            _changed(locked)
            return window
        try:
            # The operation ends the window (maintenance_mode_disabled, below).
            operations.disable_maintenance(
                locked,
                window.scheduled_by,
                reason=f"End of scheduled maintenance: {window.reason}",
                via=VIA,
                window=window,
            )
        except OperationRefused as refused:
            if refused.code in _FINAL or now >= window.ends_at + start_retry_period():
                note = (
                    f"Maintenance mode could not be turned off at the end of the window: "
                    f"{refused.message} Turn it off by hand."
                )
                _end(window, WindowState.COMPLETED, now, note=note)
                notifications.window_not_ended(window)
                _changed(locked)
            else:
                _wait(window, locked, now, refused.message, end_maintenance_window, retry)
    return window


@receiver(events.operation_written, dispatch_uid="windows-maintenance-mode-disabled")
def operation_written(sender, operation, environment, **kwargs):
    if operation.kind == OperationKind.DISABLE_MAINTENANCE:
        maintenance_mode_disabled(environment, operation, operation.started_at)


def maintenance_mode_disabled(environment, operation, now):
    """Disable Maintenance mode was written (by hand, at a window's end or by End now):
    the active window, if any, ends with it, in the operation's transaction."""
    window = environment.maintenance_windows.filter(state=WindowState.ACTIVE).first()
    if window is None:
        return None
    by = operation.requested_by
    if operation.via == VIA:
        _end(window, WindowState.COMPLETED, now)
    elif now < window.ends_at:
        note = f"Ended early: {by} turned maintenance mode off." if by else ""
        _end(window, WindowState.COMPLETED, now, by=by, note=note)
    else:
        _end(window, WindowState.COMPLETED, now, note=f"{by} turned maintenance mode off.")
    _changed(environment)
    return window


def remind(window_id, now=None):
    """Send the reminder that is due (the shortest lead time already reached), unless
    it or a later one went out already."""
    now = now or timezone.now()
    with transaction.atomic():
        window = MaintenanceWindow.objects.select_for_update().get(pk=window_id)
        if window.state != WindowState.SCHEDULED or now >= window.starts_at:
            return None
        due = [
            lead for lead in reminder_leads() if window.starts_at - timedelta(seconds=lead) <= now
        ]
        if not due:
            return None
        lead = min(due)
        if window.reminded_lead is not None and window.reminded_lead <= lead:
            return None
        window.reminded_lead = lead
        window.save(update_fields=["reminded_lead"])
        return notifications.window_reminder(window, lead)


def sweep(now=None):
    """The watchdog: start, end and remind whatever is due, whatever became of its task."""
    now = now or timezone.now()
    done = []
    windows = MaintenanceWindow.objects.open()
    for pk in windows.filter(state=WindowState.SCHEDULED, starts_at__lte=now).values_list(
        "pk", flat=True
    ):
        done.append(start_window(pk, now, retry=False))
    for pk in windows.filter(state=WindowState.ACTIVE, ends_at__lte=now).values_list(
        "pk", flat=True
    ):
        done.append(end_window(pk, now, retry=False))
    if reminder_leads():
        horizon = now + timedelta(seconds=reminder_leads()[0])
        upcoming = windows.filter(
            state=WindowState.SCHEDULED, starts_at__gt=now, starts_at__lte=horizon
        )
        for pk in upcoming.values_list("pk", flat=True):
            remind(pk, now)
    return done


# --- What the pages and the gate read ---------------------------------------------------


def planned_end(environment):
    """When maintenance is planned to end: the end of the active window, or None."""
    active = environment.maintenance_windows.filter(state=WindowState.ACTIVE)
    return active.values_list("ends_at", flat=True).first()


# --- Inside ----------------------------------------------------------------------------


def _lock(environment_id):
    return Environment.objects.select_for_update().get(pk=environment_id)


def _environment_of(window_id):
    return MaintenanceWindow.objects.values_list("environment_id", flat=True).get(pk=window_id)


def _check_may_maintain(environment, user):
    if not can_maintain(user, environment):
        raise OperationRefused(
            "Only project owners and environment managers may do this.",
            OperationRefused.FORBIDDEN,
        )


def _check_no_overlap(environment, starts_at, ends_at):
    conflict = environment.maintenance_windows.overlapping(starts_at, ends_at).first()
    if conflict is not None:
        raise OperationRefused(
            f"It overlaps another window of {environment.name}: {conflict.period_text}, "
            f"scheduled by {conflict.scheduled_by.get_username()} ({conflict.reason}). "
            "Windows of one environment never overlap.",
            OperationRefused.INVALID,
        )


def _changed(environment):
    """Keep the next window on the environment's row and move its revision on: the
    details page, the list and forward auth show it."""
    upcoming = (
        MaintenanceWindow.objects.open()
        .filter(environment_id=environment.pk)
        .order_by("starts_at")
        .values_list("starts_at", "ends_at")
        .first()
    )
    starts, ends = upcoming or (None, None)
    Environment.objects.filter(pk=environment.pk).update(
        window_starts_at=starts, window_ends_at=ends
    )
    Environment.objects.filter(pk=environment.pk).bump_revision()
    environment.window_starts_at, environment.window_ends_at = starts, ends


def _end(window, state, now, by=None, note=""):
    window.state = state
    window.ended_at = now
    window.ended_by = by
    window.note = note
    window.changed_at = now
    window.save(update_fields=["state", "ended_at", "ended_by", "note", "changed_at"])


def _miss(window, environment, now, why):
    _end(window, WindowState.MISSED, now, note=f"Missed: {why}")
    notifications.window_changed(window)
    _changed(environment)


def _wait(window, environment, now, why, task, retry):
    """Say on the window why it waits, and try again shortly."""
    window.note = f"Waiting: {why}"
    window.changed_at = now
    window.save(update_fields=["note", "changed_at"])
    _changed(environment)
    if retry:
        run_after = now + timedelta(seconds=settings.WINDOW_RETRY_SECONDS)
        transaction.on_commit(lambda: task.using(run_after=run_after).enqueue(window.pk))


def _enqueue_timers(window, now):
    start_maintenance_window.using(run_after=window.starts_at).enqueue(window.pk)
    end_maintenance_window.using(run_after=window.ends_at).enqueue(window.pk)
    for lead in reminder_leads():
        remind_at = max(window.starts_at - timedelta(seconds=lead), now)
        remind_maintenance_window.using(run_after=remind_at).enqueue(window.pk)


# --- Tasks: on the access queue, whose worker never waits behind a restart, so a window
# starts and ends on time; reminders go with the mail.


@task(queue_name=settings.ACCESS_QUEUE)
def start_maintenance_window(window_id):
    start_window(window_id)


@task(queue_name=settings.ACCESS_QUEUE)
def end_maintenance_window(window_id):
    end_window(window_id)


@task(queue_name=settings.NOTIFY_QUEUE)
def remind_maintenance_window(window_id):
    remind(window_id)
