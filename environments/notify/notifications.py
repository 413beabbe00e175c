"""Who is told what, by mail, and the hooks that write history events for webhooks.

Everything here that runs inside an operation's transaction only writes outbox rows
(Notification for mail, WebhookDelivery for webhooks) and enqueues their task on
commit; the worker of the notify queue sends them. Who gets a mail is decided when it
is sent, from plain queries:

- the requester, when their operation finishes or fails (a failure mail carries the
  error, the driver log's last lines and links to Resume, Rollback and Abort);
- the project's owners and environment managers, on any failure;
- everyone with a role on the environment (and the owners and managers): before a
  maintenance window, when maintenance mode turns on or off, and when a window they
  were told about is cancelled or missed. A window scheduled without "notify the
  environment's users" tells the owners and managers only;
- the requester, before their database account or firewall rule expires.

Each person gets at most one mail per event, the most specific one they have not opted
out of (NotificationOptOut, on their settings page). Users without an email address,
and inactive users, get none.
"""

import logging
import smtplib
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import F
from django.dispatch import receiver
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django_tasks import task

from environments.models import (
    MAINTAIN_ROLES,
    MAINTENANCE_ACTIONS,
    RECORD_KINDS,
    DatabaseAccount,
    FirewallRule,
    Notification,
    NotificationEvent,
    NotificationKind,
    NotificationOptOut,
    OperationKind,
    Outcome,
    Status,
    WindowState,
)
from environments.notify import delivery, webhooks
from environments.notify.webhooks import absolute_url
from environments.operations import events
from environments.time_zones import valid_zone

Kind = NotificationKind

logger = logging.getLogger(__name__)

#: Operations that grant access: their requester is warned before it expires.
GRANT_KINDS = (OperationKind.ENABLE_ACCESS, OperationKind.REQUEST_ACCESS)

#: How many lines of the driver log a failure mail quotes.
LOG_TAIL_LINES = 20
#: Operations whose requester hears how they ended: not a record of a change they made
#: (a role, a window scheduled or cancelled), nor an Abort, which ends as it is asked for.
_NOT_TOLD = (*RECORD_KINDS, OperationKind.ABORT)


# --- Listening to the history (environments.operations.events, in its transactions) --------


@receiver(events.operation_written, dispatch_uid="notify-operation-written")
def operation_written(sender, operation, environment, **kwargs):
    operation_started(operation, environment)


@receiver(events.operation_finished, dispatch_uid="notify-operation-finished")
def operation_ended(sender, operation, environment, **kwargs):
    operation_finished(operation, environment)
    grant = operation.grant
    if operation.kind in GRANT_KINDS and grant.applied_at and grant.ended_at is None:
        transaction.on_commit(lambda: schedule_expiry_warning(grant))


def operation_started(operation, environment):
    """A history row was written: its webhook event, and its end too when it was written
    already finished (role changes)."""
    webhooks.operation_event(operation, environment, webhooks.STARTED)
    if operation.finished_at is not None:
        operation_finished(operation, environment)


def operation_finished(operation, environment):
    """A history row ended: its webhook event, and mail to whoever should hear of it."""
    webhooks.operation_event(operation, environment, webhooks.FINISHED)
    failed = operation.outcome == Outcome.FAILED
    told = operation.requested_by_id and operation.kind not in _NOT_TOLD
    if failed or told or maintenance_turned(operation):
        _notify(
            f"operation:{operation.pk}",
            NotificationEvent.OPERATION_FINISHED,
            environment,
            operation=operation,
        )


def maintenance_turned(operation):
    """ "on" or "off" when the operation turned maintenance mode on or off, else None. An
    Abort returns the status without acting, so it turns nothing."""
    if operation.action not in MAINTENANCE_ACTIONS or operation.kind == OperationKind.ABORT:
        return None
    if operation.outcome not in (Outcome.SUCCEEDED, Outcome.ROLLED_BACK):
        return None
    if operation.status_after == Status.IN_MAINTENANCE:
        return "on"
    if operation.status_after == Status.DEPLOYED:
        return "off"
    return None


# --- Hooks of maintenance windows (environments.windows, in its transactions) ---------------


def window_reminder(window, lead_seconds):
    return _notify(
        f"window-reminder:{window.pk}:{lead_seconds}",
        NotificationEvent.WINDOW_REMINDER,
        window.environment,
        window=window,
    )


def window_changed(window):
    """The window was cancelled or missed."""
    return _notify(
        f"window-changed:{window.pk}",
        NotificationEvent.WINDOW_CHANGED,
        window.environment,
        window=window,
    )


def window_not_ended(window):
    """The window's end could not turn maintenance mode off: the managers must."""
    return _notify(
        f"window-not-ended:{window.pk}",
        NotificationEvent.WINDOW_NOT_ENDED,
        window.environment,
        window=window,
    )


# --- Access about to expire ---------------------------------------------------------------

GRANT_MODELS = {"firewallrule": FirewallRule, "databaseaccount": DatabaseAccount}


def warning_lead():
    return timedelta(minutes=settings.ACCESS_EXPIRY_WARNING_MINUTES)


def schedule_expiry_warning(grant):
    """Wake before the grant expires (called once it is applied, after the commit). A
    grant that lives no longer than the warning's lead gets none: its requester has just
    asked for it."""
    warn_at = grant.expires_at - warning_lead()
    if grant.applied_at is None or warn_at <= grant.applied_at:
        return
    warn_access_expiring_task.using(run_after=warn_at).enqueue(grant._meta.model_name, grant.pk)


def warn_access_expiring(model_name, grant_id, now=None):
    """Tell the requester their grant expires soon, once, if it is still active."""
    now = now or timezone.now()
    grant = GRANT_MODELS[model_name].objects.select_related("environment").get(pk=grant_id)
    if (
        grant.ended_at is not None
        or grant.applied_at is None
        or not (grant.expires_at - warning_lead() <= now < grant.expires_at)
    ):
        return None
    with transaction.atomic():
        return _notify(
            f"access-expiring:{model_name}:{grant.pk}",
            NotificationEvent.ACCESS_EXPIRING,
            grant.environment,
            **{"firewall_rule" if model_name == "firewallrule" else "database_account": grant},
        )


def warn_expiring_access(now=None):
    """The watchdog: warn about every grant that expires soon and was not warned about."""
    now = now or timezone.now()
    warned = []
    for model_name, model in GRANT_MODELS.items():
        due = (
            model.objects.filter(
                ended_at=None,
                applied_at__isnull=False,
                expires_at__gt=now,
                expires_at__lte=now + warning_lead(),
                applied_at__lt=F("expires_at") - warning_lead(),
            )
            .exclude(notification__event=NotificationEvent.ACCESS_EXPIRING)
            .values_list("pk", flat=True)
        )
        for pk in due:
            if warn_access_expiring(model_name, pk, now):
                warned.append((model_name, pk))
    return warned


# --- The outbox ---------------------------------------------------------------------------


def _notify(key, event, environment, **refs):
    """Write the event's mail to the outbox once (its key), and send it after the commit."""
    notification, created = Notification.objects.get_or_create(
        key=key, defaults={"event": event, "environment": environment, **refs}
    )
    if not created:
        return None
    transaction.on_commit(lambda: enqueue(notification, None))
    return notification


def enqueue(row, run_after):
    task = send_notification.using(run_after=run_after) if run_after else send_notification
    task.enqueue(row.pk)


def hand_out_overdue(now=None):
    return delivery.hand_out_overdue(Notification, enqueue, now)


# --- Who gets it --------------------------------------------------------------------------


def managers(environment):
    """The project's owners and environment managers."""
    return get_user_model().objects.filter(
        project_memberships__project_id=environment.project_id,
        project_memberships__role__in=MAINTAIN_ROLES,
    )


def environment_users(environment):
    """Everyone with a role on the environment."""
    return get_user_model().objects.filter(environment_roles__environment_id=environment.pk)


def window_audience(environment, window=None):
    """Who hears about maintenance: the managers, and the environment's users unless the
    window was scheduled without telling them."""
    people = list(managers(environment))
    if window is None or window.notify_users:
        people += list(environment_users(environment))
    return people


def recipients(notification):
    """[(user, kind)]: each user once, with the first kind that applies to them, in the
    order the kinds are offered. Opted-out kinds, inactive users and users without an
    email address are left out."""
    offers = []  # (user, kind), most specific first
    event = notification.event
    environment = notification.environment
    if event == NotificationEvent.OPERATION_FINISHED:
        operation = notification.operation
        failed = operation.outcome == Outcome.FAILED
        if operation.requested_by_id and operation.kind not in _NOT_TOLD:
            kind = Kind.OPERATION_FAILED if failed else Kind.OPERATION_FINISHED
            offers.append((operation.requested_by, kind))
        if failed:
            offers += [(user, Kind.ENVIRONMENT_FAILED) for user in managers(environment)]
        turned = maintenance_turned(operation)
        if turned:
            kind = Kind.MAINTENANCE_ON if turned == "on" else Kind.MAINTENANCE_OFF
            window = operation.window if operation.window_id else None
            offers += [(user, kind) for user in window_audience(environment, window)]
    elif event == NotificationEvent.WINDOW_REMINDER:
        audience = window_audience(environment, notification.window)
        offers += [(user, NotificationKind.WINDOW_REMINDER) for user in audience]
    elif event == NotificationEvent.WINDOW_CHANGED:
        audience = window_audience(environment, notification.window)
        offers += [(user, NotificationKind.WINDOW_CHANGED) for user in audience]
    elif event == NotificationEvent.WINDOW_NOT_ENDED:
        offers += [(user, NotificationKind.ENVIRONMENT_FAILED) for user in managers(environment)]
    elif event == NotificationEvent.ACCESS_EXPIRING:
        grant = notification.firewall_rule or notification.database_account
        offers.append((grant.requested_by, NotificationKind.ACCESS_EXPIRING))

    opted_out = set(
        NotificationOptOut.objects.filter(user__in={user.pk for user, _ in offers}).values_list(
            "user_id", "kind"
        )
    )
    chosen = {}
    for user, kind in offers:
        if user.pk in chosen or (user.pk, kind) in opted_out:
            continue
        if user.is_active and user.email:
            chosen[user.pk] = (user, kind)
    return list(chosen.values())


# --- Sending (the worker of the notify queue) -----------------------------------------------


def send(notification_id, now=None):
    """Mail everyone the notification is for and has not had it yet; try again later
    for those the mail server did not take."""
    row = delivery.claim(Notification, notification_id, now)
    if row is None:
        return None
    row = Notification.objects.select_related(
        "environment__project",
        "operation__requested_by",
        "operation__service",
        "operation__window__scheduled_by",
        "window__scheduled_by",
        "firewall_rule__requested_by",
        "database_account__requested_by",
    ).get(pk=row.pk)
    todo = [(user, kind) for user, kind in recipients(row) if user.pk not in row.sent_to]
    zones = _zones([user for user, _ in todo])
    errors = []
    if todo and still_news(row):
        try:
            with get_connection() as connection:
                for user, kind in todo:
                    message = compose(row, user, kind, zones.get(user.pk), connection)
                    try:
                        message.send()
                    except (smtplib.SMTPException, OSError) as exc:
                        errors.append(f"{user.get_username()}: {type(exc).__name__}: {exc}")
                    else:
                        row.sent_to.append(user.pk)
        except (smtplib.SMTPException, OSError) as exc:
            errors.append(f"The mail server: {type(exc).__name__}: {exc}")
    if errors:
        logger.warning("Notification %s not sent to all: %s", row.key, "; ".join(errors))
    row.error = "\n".join(errors)
    delivery.settle(
        row, delivered=not errors, now=timezone.now(), enqueue=enqueue, fields=["sent_to", "error"]
    )
    return row


def still_news(notification):
    """A reminder of a window that started or ended, or a warning about access that
    ended, has nothing left to say (a retry that came late)."""
    now = timezone.now()
    if notification.event == NotificationEvent.WINDOW_REMINDER:
        window = notification.window
        return window.state == WindowState.SCHEDULED and now < window.starts_at
    if notification.event == NotificationEvent.ACCESS_EXPIRING:
        grant = notification.firewall_rule or notification.database_account
        return grant.ended_at is None and now < grant.expires_at
    return True


def _zones(users):
    from environments.models import UserSettings

    chosen = UserSettings.objects.filter(user__in=[user.pk for user in users]).values_list(
        "user_id", "time_zone"
    )
    return {user_id: valid_zone(name) for user_id, name in chosen if valid_zone(name)}


def compose(notification, user, kind, zone, connection=None):
    """The mail for ``user``: plain text and HTML, times in their time zone."""
    with timezone.override(zone or timezone.get_default_timezone()):
        template, context = _content(notification, user, kind)
        context["time_zone"] = timezone.get_current_timezone_name()
        subject = _subject(notification, kind, context)
        text = render_to_string(f"email/{template}.txt", context)
        html = render_to_string(f"email/{template}.html", {**context, "subject": subject})
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
        connection=connection,
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(html, "text/html")
    return message


def _content(notification, user, kind):
    environment = notification.environment
    context = {
        "user": user,
        "kind": kind,
        "environment": environment,
        "environment_url": absolute_url(environment.get_absolute_url()),
        "settings_url": absolute_url(reverse("user-settings")),
    }
    event = notification.event
    if event == NotificationEvent.OPERATION_FINISHED:
        operation = notification.operation
        context.update(
            operation=operation,
            operation_url=absolute_url(
                reverse("operation-detail", args=[environment.slug, operation.activity_id])
            ),
            log_tail="\n".join(operation.log_text.splitlines()[-LOG_TAIL_LINES:]),
            recovery=_recovery_links(operation, environment),
            window=operation.window if operation.window_id else None,
        )
        if kind in (NotificationKind.MAINTENANCE_ON, NotificationKind.MAINTENANCE_OFF):
            return "maintenance_mode", context
        return "operation_finished", context
    if event == NotificationEvent.ACCESS_EXPIRING:
        context["grant"] = notification.firewall_rule or notification.database_account
        return "access_expiring", context
    context["window"] = notification.window
    context["windows_url"] = absolute_url(reverse("window-list", args=[environment.slug]))
    return event, context


def _recovery_links(operation, environment):
    """Resume, Rollback and Abort, when the operation left the environment Failed."""
    if operation.outcome != Outcome.FAILED or not operation.changes_status:
        return []
    if environment.status != Status.FAILED:
        return []
    return [
        (kind.label, absolute_url(reverse("environment-maintain", args=[environment.slug, kind])))
        for kind in (OperationKind.RESUME, OperationKind.ROLLBACK, OperationKind.ABORT)
    ]


def _subject(notification, kind, context):
    environment = notification.environment
    if notification.event == NotificationEvent.OPERATION_FINISHED:
        operation = notification.operation
        if kind == NotificationKind.MAINTENANCE_ON:
            return f"Maintenance mode is on: {environment.name}"
        if kind == NotificationKind.MAINTENANCE_OFF:
            return f"Maintenance mode is off: {environment.name}"
        if operation.outcome == Outcome.FAILED:
            return f"Failed: {operation.activity} on {environment.name}"
        return f"{operation.get_outcome_display()}: {operation.activity} on {environment.name}"
    if notification.event == NotificationEvent.ACCESS_EXPIRING:
        grant = context["grant"]
        when = timezone.localtime(grant.expires_at)
        return f"Your access to {environment.name} expires at {when:%H:%M %Z}"
    window = notification.window
    if notification.event == NotificationEvent.WINDOW_REMINDER:
        when = starts_in(window.starts_at)
        return f"Maintenance of {environment.name} {when}: {window.period_text}"
    if notification.event == NotificationEvent.WINDOW_NOT_ENDED:
        return f"Maintenance mode is still on: {environment.name}"
    return f"Maintenance window {window.get_state_display().lower()}: {environment.name}"


def starts_in(moment, now=None):
    """ "in 1 hour", "in 24 hours", "in 12 minutes"."""
    minutes = max(0, ((moment - (now or timezone.now())).total_seconds()) / 60)
    if minutes >= 90:
        return f"in {round(minutes / 60)} hours"
    if minutes >= 55:
        return "in 1 hour"
    minutes = max(1, round(minutes))
    return "in 1 minute" if minutes == 1 else f"in {minutes} minutes"


# --- Tasks, on the notify queue ----------------------------------------------------------


@task(queue_name=settings.NOTIFY_QUEUE)
def warn_access_expiring_task(model_name, grant_id):
    warn_access_expiring(model_name, grant_id)


@task(queue_name=settings.NOTIFY_QUEUE)
def send_notification(notification_id):
    send(notification_id)
