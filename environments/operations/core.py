"""Starting and finishing operations: the one writer of the history.

Starting one locks the environment row, performs the transition, writes the Operation
row in the same transaction and enqueues its task when it commits. The worker and the
watchdog finish operations through the same functions, under the same lock, so a late
worker and the watchdog can never both settle one operation. Each write and each finish
is announced (environments.operations.events) inside its transaction.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import can_proceed
from django_tasks import task

from environments import crypto
from environments.drivers import DriverError, OperationLog, get_driver
from environments.drivers.database import get_database_driver
from environments.drivers.firewall import get_firewall_driver
from environments.models import (
    END_GRANT_KINDS,
    AccessEnd,
    DatabaseAccount,
    Environment,
    FirewallRule,
    Operation,
    OperationKind,
    Outcome,
    ServiceState,
    keeps_users_out,
)
from environments.operations import events
from environments.permissions import can_maintain
from environments.refusals import OperationRefused

logger = logging.getLogger(__name__)


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


def start_operation(environment, user, kind, start):
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


def write_operation(environment, user, kind, now, *, enqueue=True, **fields):
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
    events.operation_written.send(Operation, operation=operation, environment=environment)
    if enqueue:
        transaction.on_commit(lambda: _enqueue(operation))
    return operation


def _enqueue(operation):
    # Ending access waits for nothing: it has a queue (and a worker) of its own.
    queue = settings.ACCESS_QUEUE if operation.ends_grant else run_operation.queue_name
    run_operation.using(queue_name=queue).enqueue(operation.pk)
    # A second task wakes at the deadline, so a worker that died mid-operation never
    # leaves the environment stuck.
    deadline = operation.deadline + timedelta(seconds=1)
    enforce_deadline.using(queue_name=queue, run_after=deadline).enqueue(operation.pk)


# --- The worker's task ------------------------------------------------------------


@task()
def run_operation(operation_id):
    """Perform a queued operation through the environment's driver, then finish it."""
    operation = mark_running(operation_id)
    if operation is None:
        logger.info("Operation %s is no longer queued; nothing to do.", operation_id)
        return
    # Each line the driver writes is stored as it happens (not inside a transaction:
    # the worker runs tasks outside one), so the operation shows its progress.
    log = OperationLog(operation)
    try:
        perform(operation, log)
    except DriverError as exc:
        fail_operation(operation_id, str(exc))
    except Exception as exc:
        logger.exception("Operation %s failed unexpectedly", operation.activity_id)
        fail_operation(operation_id, f"Unexpected error in the driver: {type(exc).__name__}: {exc}")
    else:
        complete_operation(operation_id)


def perform(operation, log):
    """Ask the driver to do (or, for a rollback, undo) the operation's action."""
    driver = get_driver(operation.environment, log, deadline=operation.deadline)
    verb = "Undoing" if operation.undo else "Performing"
    log.write(f"{verb} {operation.action_text} with the {driver.name} driver")
    if operation.action == OperationKind.RESTART_SERVICE:
        # A restart cannot be taken back; undoing a failed one means bringing the
        # service back up, which is another restart.
        driver.restart_service(operation.service.kind)
    elif operation.action == OperationKind.ENABLE_MAINTENANCE:
        driver.set_maintenance_mode(not operation.undo)
    elif operation.action == OperationKind.DISABLE_MAINTENANCE:
        driver.set_maintenance_mode(operation.undo)
    elif operation.action == OperationKind.ENABLE_ACCESS:
        get_firewall_driver(operation.environment, log).apply_firewall_rule(operation.firewall_rule)
    elif operation.action == OperationKind.REMOVE_ACCESS:
        get_firewall_driver(operation.environment, log).remove_firewall_rule(
            operation.firewall_rule
        )
    elif operation.action == OperationKind.REQUEST_ACCESS:
        account = operation.database_account
        password = crypto.unseal(account.password_encrypted)
        if password is None:
            raise DriverError("The account's password could not be read; request access again.")
        get_database_driver(operation.environment, log).create_database_account(account, password)
    elif operation.action == OperationKind.REVOKE_ACCESS:
        get_database_driver(operation.environment, log).drop_database_account(
            operation.database_account
        )
    else:
        raise DriverError(f"No driver action for {operation.action!r}.")


@task()
def enforce_deadline(operation_id):
    """Fail the operation if it is still running at its deadline."""
    fail_overdue_operation(operation_id)


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


def complete_operation(operation_id):
    """The driver succeeded: the environment reaches the operation's target status."""
    return _finish(operation_id, error="")


def fail_operation(operation_id, error):
    """The driver failed or the deadline passed: the environment becomes Failed."""
    return _finish(operation_id, error=error or "The operation failed.")


def _finish(operation_id, *, error):
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
        operation.save(update_fields=["outcome", "error", "finished_at", "status_after"])

        service = operation.service
        if service is not None and operation.action == OperationKind.RESTART_SERVICE:
            service.state = ServiceState.FAILED if error else ServiceState.RUNNING
            if not error:
                service.last_restarted_at = now
            service.save(update_fields=["state", "last_restarted_at"])
        events.operation_finished.send(Operation, operation=operation, environment=environment)
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


# --- Grants: settling, ending, removing ---------------------------------------------


def end_grant(grant, user, end_reason, now=None, via=""):
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
            queue_removal(locked, user, now, via=via)
        return True


def expire_grant(model_name, grant_id):
    """End one grant if it is due (the task that wakes at its expiry)."""
    model = {"firewallrule": FirewallRule, "databaseaccount": DatabaseAccount}[model_name]
    grant = model.objects.filter(pk=grant_id).first()
    if grant is None or grant.ended_at is not None or grant.expires_at > timezone.now():
        return False
    return end_grant(grant, None, AccessEnd.EXPIRED)


@task(queue_name=settings.ACCESS_QUEUE)
def expire_access_grant(model_name, grant_id):
    """End a firewall rule or database account at its expiry time."""
    expire_grant(model_name, grant_id)


def queue_removal(grant, user, now, *, retry=False, via=""):
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
    return write_operation(
        grant.environment,
        user,
        kind,
        now,
        reason=why,
        target=grant.history_target,
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
        queue_removal(grant, grant.ended_by, now, via=grant.ended_via)
    else:
        transaction.on_commit(lambda: _enqueue_expiry(grant))


def _enqueue_expiry(grant):
    expire_access_grant.using(run_after=grant.expires_at).enqueue(grant._meta.model_name, grant.pk)
