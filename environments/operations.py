"""The only way to start or finish a Maintain action.

Starting one locks the environment row, performs the transition, writes the Operation
row in the same transaction and enqueues the background task when it commits. The
worker and the watchdog finish operations through the same functions, under the same
lock, so a late worker and the watchdog can never both settle one operation.
"""

import ipaddress
import logging
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import can_proceed

from environments import crypto, notifications
from environments.access import can_maintain
from environments.models import (
    END_GRANT_KINDS,
    AccessEnd,
    AccessLevel,
    DatabaseAccount,
    Environment,
    EnvironmentRoleKind,
    FirewallRule,
    Operation,
    OperationKind,
    Outcome,
    ServiceKind,
    ServiceState,
    keeps_users_out,
)

logger = logging.getLogger(__name__)


class OperationRefused(Exception):
    """A Maintain action that may not start; ``message`` is for the user."""

    BUSY = "busy"  # another operation is in progress (HTTP 409)
    FORBIDDEN = "forbidden"  # the user may not act here (HTTP 403)
    NOT_ALLOWED = "not_allowed"  # not possible in the current status (HTTP 409)
    INELIGIBLE = "ineligible"  # never possible on this environment (HTTP 409)
    INVALID = "invalid"  # the request itself is wrong (HTTP 400)

    def __init__(self, message, code):
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def status(self):
        """The HTTP status a page or the API answers it with."""
        return {self.FORBIDDEN: 403, self.INVALID: 400}.get(self.code, 409)


def busy_message(environment, running=None):
    what = f"{running.activity}, " if running else ""
    return (
        f"Another operation is in progress on {environment.name} "
        f"({what}{environment.get_status_display()}). Wait for it to finish, then try again."
    )


def check_allowed(environment, user, kind):
    """Raise OperationRefused, with the reason, if ``user`` may not start ``kind`` now."""
    running = environment.running_operation()
    if environment.is_busy or running is not None:
        raise OperationRefused(busy_message(environment, running), OperationRefused.BUSY)
    if not can_maintain(user, environment):
        raise OperationRefused(
            "Only project owners and environment managers may do this.",
            OperationRefused.FORBIDDEN,
        )
    transition = getattr(environment, kind)
    if not can_proceed(transition, check_conditions=False):
        raise OperationRefused(
            f"{OperationKind(kind).label} is not possible while {environment.name} is "
            f"{environment.get_status_display()}.",
            OperationRefused.NOT_ALLOWED,
        )
    if not can_proceed(transition):
        raise OperationRefused(environment.sandbox_refusal_reason(), OperationRefused.INELIGIBLE)


# --- Starting Maintain actions -------------------------------------------------------


def restart_service(environment, user, service_kind, reason="", via=""):
    if service_kind not in ServiceKind.values:
        raise OperationRefused(
            "Choose a service to restart: AOS, DIXF or MR.", OperationRefused.INVALID
        )

    def start(locked, now):
        service = locked.services.filter(kind=service_kind).first()
        if service is None:
            raise OperationRefused(
                f"{locked.name} has no {ServiceKind(service_kind).label}.",
                OperationRefused.INVALID,
            )
        status_before = locked.status
        locked.restart_service()
        service.state = ServiceState.RESTARTING
        service.save(update_fields=["state"])
        return _write(
            locked,
            user,
            OperationKind.RESTART_SERVICE,
            now,
            reason=reason,
            service=service,
            status_before=status_before,
            via=via,
        )

    return _start(environment, user, OperationKind.RESTART_SERVICE, start)


def enable_maintenance(environment, user, reason="", via="", window=None):
    """``window``: the maintenance window that turns it on (environments.windows)."""
    return _start_action(
        environment, user, OperationKind.ENABLE_MAINTENANCE, reason, via, window=window
    )


def disable_maintenance(environment, user, reason="", via="", window=None):
    return _start_action(
        environment, user, OperationKind.DISABLE_MAINTENANCE, reason, via, window=window
    )


def resume(environment, user, reason="", via=""):
    """Run the failed operation again."""
    return _start_recovery(environment, user, OperationKind.RESUME, reason, via)


def rollback(environment, user, reason="", via=""):
    """Undo the failed operation and return to the status before it."""
    return _start_recovery(environment, user, OperationKind.ROLLBACK, reason, via)


def abort(environment, user, reason="", via=""):
    """Return to the status before the failed operation without acting."""
    return _start_recovery(environment, user, OperationKind.ABORT, reason, via)


def _start_action(environment, user, kind, reason, via="", window=None):
    def start(locked, now):
        status_before = locked.status
        getattr(locked, kind)()
        operation = _write(
            locked,
            user,
            kind,
            now,
            reason=reason,
            status_before=status_before,
            via=via,
            window=window,
        )
        if kind == OperationKind.DISABLE_MAINTENANCE:
            # Turning maintenance mode off, by hand or at a window's end, ends the window.
            from environments.windows import maintenance_mode_disabled

            maintenance_mode_disabled(locked, operation, now)
        return operation

    return _start(environment, user, kind, start)


def _start_recovery(environment, user, kind, reason, via=""):
    def start(locked, now):
        failed = locked.failed_operation()
        status_before = locked.status
        getattr(locked, kind)(failed)
        operation = _write(
            locked,
            user,
            kind,
            now,
            reason=reason,
            action=failed.action,
            undo=failed.undo or kind == OperationKind.ROLLBACK,
            failed_operation=failed,
            service=failed.service,
            status_before=status_before,
            return_status=failed.return_status,
            enqueue=kind != OperationKind.ABORT,
            via=via,
        )
        if kind == OperationKind.ABORT:
            # Abort acts on nothing: it is done as soon as it is written.
            operation.outcome = Outcome.ABORTED
            operation.finished_at = now
            operation.status_after = locked.status
            operation.save(update_fields=["outcome", "finished_at", "status_after"])
            notifications.operation_finished(operation, locked)
        return operation

    return _start(environment, user, kind, start)


def _start(environment, user, kind, start):
    """Lock the environment, refuse what may not start, then ``start(locked, now)``."""
    try:
        with transaction.atomic():
            locked = Environment.objects.select_for_update().get(pk=environment.pk)
            check_allowed(locked, user, kind)
            operation = start(locked, timezone.now())
            if operation.changes_status:
                _save_status(locked, operation)
            return operation
    except IntegrityError:
        # The partial unique index on running operations caught what the row lock
        # should already have: treat it as the conflict it is.
        logger.warning("Second operation refused by the database on %s", environment.slug)
        raise OperationRefused(busy_message(environment), OperationRefused.BUSY) from None


def _save_status(environment, operation):
    environment.maintenance_mode = keeps_users_out(environment.status, operation.action)
    environment.save(update_fields=["status", "status_changed_at", "maintenance_mode"])


def _write(environment, user, kind, now, *, enqueue=True, **fields):
    """Write the history row of an operation starting now, and enqueue its task on commit."""
    values = {
        "action": kind,
        "deadline": now + timedelta(seconds=settings.OPERATION_DEADLINE_SECONDS),
        "status_before": environment.status,
        "return_status": fields.get("status_before", environment.status),
    }
    values.update(fields)
    operation = Operation.objects.create(
        environment=environment, kind=kind, requested_by=user, started_at=now, **values
    )
    Environment.objects.filter(pk=environment.pk).bump_revision()
    # Webhook events and mails: written to the outbox here, sent by the worker.
    notifications.operation_started(operation, environment)
    if enqueue:
        transaction.on_commit(lambda: _enqueue(operation))
    return operation


def _enqueue(operation):
    from environments.tasks import enforce_deadline, run_operation

    # Ending access waits for nothing: it has a queue (and a worker) of its own.
    queue = settings.ACCESS_QUEUE if operation.ends_grant else run_operation.queue_name
    run_operation.using(queue_name=queue).enqueue(operation.pk)
    # A second task wakes at the deadline, so a worker that died mid-operation never
    # leaves the environment stuck.
    deadline = operation.deadline + timedelta(seconds=1)
    enforce_deadline.using(queue_name=queue, run_after=deadline).enqueue(operation.pk)


# --- Progress and finishing (the worker and the watchdog) ------------------------


def mark_running(operation_id):
    """Claim a queued operation for the worker; None when it is no longer queued."""
    with transaction.atomic():
        claimed = Operation.objects.filter(pk=operation_id, outcome=Outcome.QUEUED).update(
            outcome=Outcome.RUNNING
        )
        if not claimed:
            return None
        # The history row now says Running.
        Environment.objects.filter(operations=operation_id).bump_revision()
    return Operation.objects.select_related(
        "environment", "service", "firewall_rule", "database_account"
    ).get(pk=operation_id)


def complete_operation(operation_id, log=""):
    """The driver succeeded: the environment reaches the operation's target status."""
    return _finish(operation_id, error="", log=log)


def fail_operation(operation_id, error, log=""):
    """The driver failed or the deadline passed: the environment becomes Failed."""
    return _finish(operation_id, error=error or "The operation failed.", log=log)


def _finish(operation_id, *, error, log):
    with transaction.atomic():
        environment_id = Operation.objects.values_list("environment_id", flat=True).get(
            pk=operation_id
        )
        environment = Environment.objects.select_for_update().get(pk=environment_id)
        operation = Operation.objects.select_related(
            "service", "firewall_rule", "database_account"
        ).get(pk=operation_id)
        if not operation.is_active:
            logger.warning(
                "Operation %s already ended %s; ignoring a late %s.",
                operation.activity_id,
                operation.outcome,
                "failure" if error else "completion",
            )
            return operation

        now = timezone.now()
        Environment.objects.filter(pk=environment.pk).bump_revision()
        if operation.changes_status:
            if error:
                environment.fail()
            else:
                environment.complete(operation)
            _save_status(environment, operation)
        else:
            _settle_grant(operation, error, now)
        if error:
            operation.outcome = Outcome.FAILED
            operation.error = error
        else:
            operation.outcome = operation.success_outcome

        operation.finished_at = now
        operation.status_after = environment.status
        if log:
            operation.log = (operation.log + log) if operation.log else log
        operation.save(update_fields=["outcome", "error", "finished_at", "status_after", "log"])

        service = operation.service
        if service is not None and operation.action == OperationKind.RESTART_SERVICE:
            service.state = ServiceState.FAILED if error else ServiceState.RUNNING
            if not error:
                service.last_restarted_at = now
            service.save(update_fields=["state", "last_restarted_at"])
        notifications.operation_finished(operation, environment)
    return operation


def fail_overdue_operations(now=None):
    """The watchdog: fail every running operation whose deadline has passed."""
    now = now or timezone.now()
    overdue = Operation.objects.active().filter(deadline__lt=now)
    failed = (fail_overdue_operation(pk, now=now) for pk in overdue.values_list("pk", flat=True))
    return [operation for operation in failed if operation is not None]


def fail_overdue_operation(operation_id, now=None):
    now = now or timezone.now()
    operation = Operation.objects.active().filter(pk=operation_id, deadline__lt=now).first()
    if operation is None:
        return None
    seconds = int((operation.deadline - operation.started_at).total_seconds())
    return fail_operation(
        operation_id,
        f"The operation did not finish within its deadline of {seconds} seconds "
        f"(the worker may have stopped). The watchdog marked it Failed at "
        f"{now:%Y-%m-%d %H:%M:%S %Z}.",
    )


# --- Just-in-time access ----------------------------------------------------------

#: A removal that failed is tried again after this long, doubling each time up to the cap.
REMOVAL_RETRY_FIRST = timedelta(minutes=1)
REMOVAL_RETRY_CAP = timedelta(hours=1)


def access_lifetime(hours=None):
    """The lifetime asked for, or the default; never longer than the maximum."""
    hours = settings.ACCESS_DEFAULT_HOURS if hours is None else hours
    if not 0 < hours <= settings.ACCESS_MAX_HOURS:
        raise OperationRefused(
            f"Access lasts at most {settings.ACCESS_MAX_HOURS:g} hours (and more than 0).",
            OperationRefused.INVALID,
        )
    return timedelta(hours=hours)


def enable_access(environment, user, *, name, cidr, reason, lifetime=None, via=""):
    """Add a firewall rule for an IP address or range (``cidr`` already validated)."""
    lifetime = lifetime or access_lifetime()

    def start(locked, now):
        active = list(FirewallRule.objects.filter(environment=locked, ended_at__isnull=True))
        covering = _covering_rule(cidr, active)
        if covering is not None:
            raise OperationRefused(
                f"An active rule already allows {cidr} on {locked.name}: "
                f"{covering.name} ({covering.cidr}).",
                OperationRefused.INVALID,
            )
        if len(active) >= settings.ACCESS_MAX_ACTIVE_RULES:
            raise OperationRefused(
                f"{locked.name} already has {settings.ACCESS_MAX_ACTIVE_RULES} active "
                "firewall rules, the most allowed. Remove one first.",
                OperationRefused.INVALID,
            )
        rule = FirewallRule.objects.create(
            environment=locked,
            requested_by=user,
            name=name,
            cidr=cidr,
            reason=reason,
            created_at=now,
            expires_at=now + lifetime,
        )
        return _write(
            locked,
            user,
            OperationKind.ENABLE_ACCESS,
            now,
            reason=reason,
            firewall_rule=rule,
            target=grant_target(rule),
            via=via,
        )

    return _start(environment, user, OperationKind.ENABLE_ACCESS, start)


def _covering_rule(cidr, rules):
    """The active rule whose range already contains ``cidr``, or None."""
    network = ipaddress.ip_network(cidr)
    for rule in rules:
        other = ipaddress.ip_network(rule.cidr)
        if other.version == network.version and network.subnet_of(other):
            return rule
    return None


def request_access(environment, user, *, level, reason, lifetime=None, via=""):
    """Create a database account for the requester, approved at once."""
    if level not in AccessLevel.values:
        raise OperationRefused("Choose Read or Read-write access.", OperationRefused.INVALID)
    lifetime = lifetime or access_lifetime()

    def start(locked, now):
        if not locked.database_server or not locked.database_name:
            raise OperationRefused(
                f"{locked.name} has no database configured for access.",
                OperationRefused.INELIGIBLE,
            )
        account = DatabaseAccount.objects.create(
            environment=locked,
            requested_by=user,
            level=level,
            reason=reason,
            username=_account_username(user),
            password_encrypted=crypto.seal(secrets.token_urlsafe(32)),
            created_at=now,
            expires_at=now + lifetime,
        )
        return _write(
            locked,
            user,
            OperationKind.REQUEST_ACCESS,
            now,
            reason=reason,
            database_account=account,
            target=grant_target(account),
            via=via,
        )

    return _start(environment, user, OperationKind.REQUEST_ACCESS, start)


def grant_target(grant):
    """What a grant is, for the history: "203.0.113.0/24 (office)", "Read account jit_x"."""
    if isinstance(grant, FirewallRule):
        return f"{grant.cidr} ({grant.name})"
    return f"{grant.get_level_display()} account {grant.username}"


def remove_access(rule, user, via=""):
    """End a firewall rule early (Remove). False if it had ended already."""
    return _end_grant(rule, user, AccessEnd.REMOVED, via=via)


def revoke_access(account, user, via=""):
    """End a database account early (Revoke). False if it had ended already."""
    return _end_grant(account, user, AccessEnd.REVOKED, via=via)


def end_access_of(user, end_reason):
    """End the grants ``user`` holds where they may no longer maintain (everywhere once
    they are inactive): by the portal itself, with ``end_reason`` in the history."""
    ended = []
    for model in (FirewallRule, DatabaseAccount):
        grants = model.objects.filter(requested_by=user, ended_at__isnull=True)
        for grant in grants.select_related("environment"):
            if not can_maintain(user, grant.environment) and _end_grant(grant, None, end_reason):
                ended.append(grant)
    return ended


def expire_access(now=None):
    """The sweeper: end every grant past its expiry, and retry removals that failed
    (backing off: a server that stays down gets a history row an hour, not a minute).

    Returns the grants it ended or retried."""
    now = now or timezone.now()
    handled = []
    for model in (FirewallRule, DatabaseAccount):
        for grant in model.objects.filter(ended_at__isnull=True, expires_at__lte=now):
            if _end_grant(grant, None, AccessEnd.EXPIRED, now=now):
                handled.append(grant)
        # Ended, but not confirmed gone, and nothing running on it.
        stuck = model.objects.filter(ended_at__isnull=False, removed_at__isnull=True).exclude(
            operations__outcome__in=[Outcome.QUEUED, Outcome.RUNNING]
        )
        for grant in stuck.select_related("environment"):
            if _removal_due(grant, now):
                with transaction.atomic():
                    _queue_removal(grant, None, now, retry=True)
                handled.append(grant)
    return handled


def expire_grant(model_name, grant_id):
    """End one grant if it is due (the task that wakes at its expiry)."""
    model = {"firewallrule": FirewallRule, "databaseaccount": DatabaseAccount}[model_name]
    grant = model.objects.filter(pk=grant_id).first()
    if grant is None or grant.ended_at is not None or grant.expires_at > timezone.now():
        return False
    return _end_grant(grant, None, AccessEnd.EXPIRED)


def account_password(account, user):
    """The account's password, for its requester only, while it lives."""
    if account.requested_by_id != user.pk or account.ended_at is not None:
        return None
    return crypto.unseal(account.password_encrypted)


def _account_username(user):
    name = re.sub(r"[^a-z0-9]+", "_", user.get_username().lower()).strip("_")[:40] or "user"
    return f"jit_{name}_{secrets.token_hex(4)}"


def _end_grant(grant, user, end_reason, now=None, via=""):
    """Mark a grant ended and queue its removal. False if it had ended already.

    A grant still being applied is removed as soon as its apply settles (see
    _settle_grant): removing it first could leave a rule or role behind that the apply
    created afterwards.
    """
    model = type(grant)
    with transaction.atomic():
        locked = model.objects.select_for_update().select_related("environment").get(pk=grant.pk)
        if locked.ended_at is not None:
            return False
        if user is not None and not can_maintain(user, locked.environment):
            raise OperationRefused(
                "Only project owners and environment managers may end access.",
                OperationRefused.FORBIDDEN,
            )
        now = now or timezone.now()
        locked.ended_at = now
        locked.end_reason = end_reason
        locked.ended_by = user
        locked.ended_via = via
        if isinstance(locked, DatabaseAccount):
            locked.password_encrypted = ""  # nobody needs it any more
        locked.save()
        Environment.objects.filter(pk=locked.environment_id).bump_revision()
        if locked.applied_at is not None:
            _queue_removal(locked, user, now, via=via)
        return True


def _removal_due(grant, now):
    failures = grant.operations.filter(kind__in=END_GRANT_KINDS, outcome=Outcome.FAILED).order_by(
        "-finished_at"
    )
    count = failures.count()
    if not count:
        return True
    wait = min(REMOVAL_RETRY_FIRST * 2 ** (count - 1), REMOVAL_RETRY_CAP)
    return failures.first().finished_at + wait <= now


def _queue_removal(grant, user, now, *, retry=False, via=""):
    if isinstance(grant, FirewallRule):
        kind, fields = OperationKind.REMOVE_ACCESS, {"firewall_rule": grant}
    else:
        kind, fields = OperationKind.REVOKE_ACCESS, {"database_account": grant}
    why = {
        AccessEnd.EXPIRED: f"Expired at {grant.expires_at:%Y-%m-%d %H:%M:%S %Z}.",
        AccessEnd.REMOVED: "Removed before it expired.",
        AccessEnd.REVOKED: "Revoked before it expired.",
        AccessEnd.FAILED: "Could not be applied; cleaning up.",
        AccessEnd.ROLE_REMOVED: (
            "Ended by the portal: the requester's role no longer allows maintaining "
            "this environment (role removed)."
        ),
        AccessEnd.DEACTIVATED: "Ended by the portal: the requester was deactivated.",
    }[grant.end_reason]
    if retry:
        why = "Retrying the removal, which had failed. " + why
    return _write(
        grant.environment,
        user,
        kind,
        now,
        reason=why,
        target=grant_target(grant),
        via=via,
        **fields,
    )


def _settle_grant(operation, error, now):
    """Record on the grant what its operation achieved."""
    grant = operation.firewall_rule or operation.database_account
    if operation.kind in END_GRANT_KINDS:
        if not error:
            grant.removed_at = now
            grant.save(update_fields=["removed_at"])
        return  # a failed removal is retried by the sweeper
    if error:
        # Nothing usable was granted; the removal cleans up anything half-made.
        if grant.ended_at is None:
            grant.ended_at = now
            grant.end_reason = AccessEnd.FAILED
        if isinstance(grant, DatabaseAccount):
            grant.password_encrypted = ""
    else:
        grant.applied_at = now
    grant.save()
    if error or grant.ended_at is not None:
        # Failed, or ended (removed, revoked, expired) while it was being applied.
        _queue_removal(grant, grant.ended_by, now, via=grant.ended_via)
    else:
        transaction.on_commit(lambda: _enqueue_expiry(grant))


def _enqueue_expiry(grant):
    from environments.tasks import expire_access_grant

    expire_access_grant.using(run_after=grant.expires_at).enqueue(grant._meta.model_name, grant.pk)
    notifications.schedule_expiry_warning(grant)


# --- Environment roles (assigned in Django admin) ------------------------------------


def record_role_change(environment, actor, user, role, *, granted, previous_role=None):
    """Write the history row of an environment role granted or removed.

    Called by the admin (and seed_demo) in the transaction that saves or deletes the
    role, so the history and the change cannot disagree. ``actor`` None: the portal.
    """
    now = timezone.now()
    label = EnvironmentRoleKind(role).label
    if granted and previous_role and previous_role != role:
        # "Environment role changed: tom, User → Maintenance mode user"
        target = f"{user.get_username()}, {EnvironmentRoleKind(previous_role).label} → {label}"
        kind = OperationKind.CHANGE_ROLE
    else:
        target = f"{user.get_username()}, {label}"
        kind = OperationKind.GRANT_ROLE if granted else OperationKind.REMOVE_ROLE
    return _write(
        environment,
        actor,
        kind,
        now,
        enqueue=False,
        target=target,
        deadline=now,
        finished_at=now,
        outcome=Outcome.SUCCEEDED,
        status_after=environment.status,
    )


START_FUNCTIONS = {
    OperationKind.RESTART_SERVICE: restart_service,
    OperationKind.ENABLE_MAINTENANCE: enable_maintenance,
    OperationKind.DISABLE_MAINTENANCE: disable_maintenance,
    OperationKind.RESUME: resume,
    OperationKind.ROLLBACK: rollback,
    OperationKind.ABORT: abort,
    OperationKind.ENABLE_ACCESS: enable_access,
    OperationKind.REQUEST_ACCESS: request_access,
}
