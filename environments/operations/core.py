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
from django.db.models import Q
from django.utils import timezone
from django_fsm import can_proceed
from django_tasks import task

from environments import crypto
from environments.drivers import DriverError, Later, OperationLog, TryAgain, get_driver
from environments.drivers.database import LoginNotDropped, get_database_driver
from environments.drivers.firewall import get_firewall_driver
from environments.models import (
    END_GRANT_KINDS,
    MAINTENANCE_ACTIONS,
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
    if enqueue:
        values.update(step="act", step_number=1, step_due_at=now)
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


def write_record(environment, user, kind, now=None, **fields):
    """Write the history row of a change that is done as it is written (a role given, a
    window scheduled): Succeeded at once, so it never counts as a running operation."""
    now = now or timezone.now()
    return write_operation(
        environment,
        user,
        kind,
        now,
        enqueue=False,
        deadline=now,
        finished_at=now,
        outcome=Outcome.SUCCEEDED,
        status_after=environment.status,
        **fields,
    )


def _enqueue(operation):
    # The first step, due now: enqueued with an explicit run_after, so that it is not
    # ordered after every due later step (django-tasks-db stores "no run_after" as the
    # year 9999).
    _enqueue_step(operation.pk, 1, timezone.now(), operation.ends_grant)
    # A task wakes at the deadline, so a worker that died mid-operation never leaves
    # the environment stuck.
    deadline = operation.deadline + timedelta(seconds=1)
    enforce_deadline.using(queue_name=_queue(operation.ends_grant), run_after=deadline).enqueue(
        operation.pk
    )


def _queue(ends_grant):
    # Ending access waits for nothing: it has a queue (and a worker) of its own.
    return settings.ACCESS_QUEUE if ends_grant else run_step.queue_name


def _enqueue_step(operation_id, number, due, ends_grant):
    run_step.using(queue_name=_queue(ends_grant), run_after=due).enqueue(operation_id, number)


# --- Steps: the worker's task ------------------------------------------------------
# An operation runs as a chain of short steps: each task does one (run a command, check
# health once) and then finishes the operation, fails it, or enqueues the next step for
# later. No step waits, so one worker drives many operations at once. The operation
# row records its pending step (name, number, when due) and, while a worker runs it,
# a lease: a task that is late, lost or run twice changes nothing twice.

#: A passing failure (TryAgain) runs the same step again this many times at most.
TRIES = 3
#: After this many failed removals in a row a grant says "Removal blocked" (the sweeper
#: retries on, with back-off: a minute, two, four... so about a quarter of an hour).
REMOVAL_BLOCKED_AFTER = 4


@task()
def run_step(operation_id, number):
    """Run step ``number`` of the operation, if it is still the pending one."""
    operation, cut = claim_step(operation_id, number)
    if operation is None:
        logger.info("Step %s of operation %s is not pending; nothing to do.", number, operation_id)
        return
    # Each line the driver writes is stored as it happens (not inside a transaction:
    # the worker runs tasks outside one), so the operation shows its progress.
    log = OperationLog(operation)
    if cut:
        log.write(
            f"The previous attempt of step {number} ({operation.step}) was cut off (its "
            "worker stopped before it ended): running it again."
        )
    if operation.stop_requested_at is not None:
        stopped(operation_id)
        return
    try:
        later = perform_step(operation, log)
    except TryAgain as exc:
        tries = operation.memo.get("tries", 0) + 1
        if tries >= TRIES:
            fail_operation(operation_id, f"{exc} (tried {tries} times)", number)
            return
        operation.memo["tries"] = tries
        later = Later(operation.step, exc.seconds)
        log.write(f"Trying again in {exc.seconds:g} s (try {tries + 1} of {TRIES}).")
    except DriverError as exc:
        blocked = isinstance(exc, LoginNotDropped)
        fail_operation(operation_id, str(exc), number, removal_blocked=blocked)
        return
    except Exception as exc:
        logger.exception("Operation %s failed unexpectedly", operation.activity_id)
        fail_operation(
            operation_id, f"Unexpected error in the driver: {type(exc).__name__}: {exc}", number
        )
        return
    if later is None:
        complete_operation(operation_id, number)
    else:
        next_step(operation, number, later, log)


def claim_step(operation_id, number, now=None):
    """Take step ``number`` of an active operation for this worker, unless another holds
    it. Returns the operation (None when the step is not pending, or held) and whether
    an earlier attempt of it was cut off (a worker that died holding it)."""
    now = now or timezone.now()
    lease = now + timedelta(seconds=settings.OPERATION_STEP_LEASE_SECONDS)
    free = Q(step_lease_until__isnull=True) | Q(step_lease_until__lt=now)
    pending = Operation.objects.active().filter(pk=operation_id, step_number=number)
    with transaction.atomic():
        cut = pending.filter(step_lease_until__lt=now).exists()
        if not pending.filter(free).update(step_lease_until=lease, outcome=Outcome.RUNNING):
            return None, False
        # The history row says Running, and the status card names the step.
        Environment.objects.filter(operations=operation_id).bump_revision()
    operation = Operation.objects.select_related(
        "environment", "service", "firewall_rule", "database_account", "stop_requested_by"
    ).get(pk=operation_id)
    return operation, cut


def next_step(operation, number, later, log, now=None):
    """The step ended and the action is not done: record the next one and enqueue it."""
    now = now or timezone.now()
    due = now + timedelta(seconds=later.seconds)
    log.write(f"Next: {later.step} at {timezone.localtime(due):%H:%M:%S %Z} (step {number + 1})")
    with transaction.atomic():
        moved = (
            Operation.objects.active()
            .filter(pk=operation.pk, step_number=number, stop_requested_at__isnull=True)
            .update(
                step=later.step,
                step_number=number + 1,
                step_due_at=due,
                step_lease_until=None,
                memo=operation.memo,
            )
        )
        if moved:
            Environment.objects.filter(pk=operation.environment_id).bump_revision()
            transaction.on_commit(
                lambda: _enqueue_step(operation.pk, number + 1, due, operation.ends_grant)
            )
    if not moved:
        # Stopped while this step ran (or settled by the deadline meanwhile).
        stopped(operation.pk)


def stopped(operation_id):
    """End an operation whose Stop was asked for, now that no step of it runs."""
    operation = Operation.objects.select_related("stop_requested_by").get(pk=operation_id)
    if not operation.is_active or operation.stop_requested_at is None:
        return operation
    by = operation.stop_requested_by
    who = by.get_username() if by else "the portal"
    return fail_operation(operation_id, f"Stopped by {who}: {operation.stop_reason}")


def perform_step(operation, log):
    """Ask the driver for the pending step of the operation's action (or, for a rollback,
    of its undoing): None when the action is done, else the next step."""
    step = operation.step or "act"
    if step == "act":
        verb = "Undoing" if operation.undo else "Performing"
        log.write(f"{verb} {operation.action_text}")
    environment = operation.environment
    if operation.action in (OperationKind.RESTART_SERVICE, *MAINTENANCE_ACTIONS):
        driver = get_driver(environment, log, deadline=operation.deadline, memo=operation.memo)
        if step == "act":
            log.write(f"with the {driver.name} driver")
        if operation.action == OperationKind.RESTART_SERVICE:
            # A restart cannot be taken back; undoing a failed one means bringing the
            # service back up, which is another restart.
            return driver.restart_service(operation.service.kind, step)
        turn_on = (operation.action == OperationKind.ENABLE_MAINTENANCE) != operation.undo
        return driver.set_maintenance_mode(turn_on, step)
    if operation.action == OperationKind.ENABLE_ACCESS:
        get_firewall_driver(environment, log).apply_firewall_rule(operation.firewall_rule)
    elif operation.action == OperationKind.REMOVE_ACCESS:
        get_firewall_driver(environment, log).remove_firewall_rule(operation.firewall_rule)
    elif operation.action == OperationKind.REQUEST_ACCESS:
        account = operation.database_account
        password = crypto.unseal(account.password_encrypted)
        if password is None:
            raise DriverError("The account's password could not be read; request access again.")
        get_database_driver(environment, log).create_database_account(account, password)
    elif operation.action == OperationKind.REVOKE_ACCESS:
        get_database_driver(environment, log).drop_database_account(operation.database_account)
    else:
        raise DriverError(f"No driver action for {operation.action!r}.")
    return None


def requeue_lost_steps(now=None):
    """The watchdog: hand out again every step whose task was lost: due longer ago than a
    lease and not held, or held past its lease (its worker died or froze)."""
    now = now or timezone.now()
    lease = timedelta(seconds=settings.OPERATION_STEP_LEASE_SECONDS)
    lost = Operation.objects.active().filter(
        Q(step_lease_until__lt=now) | Q(step_lease_until__isnull=True, step_due_at__lt=now - lease)
    )
    requeued = list(lost.values_list("pk", "step_number", "kind"))
    for pk, number, kind in requeued:
        _enqueue_step(pk, number, now, kind in END_GRANT_KINDS)
    return requeued


@task()
def enforce_deadline(operation_id):
    """Fail the operation if it is still running at its deadline."""
    fail_overdue_operation(operation_id)


# --- Progress and finishing (the worker and the watchdog) ------------------------


def complete_operation(operation_id, step=None):
    """The driver succeeded: the environment reaches the operation's target status.
    ``step``: the number of the step that says so, ignored unless still the pending one."""
    return _finish(operation_id, error="", step=step)


def fail_operation(operation_id, error, step=None, *, removal_blocked=False):
    """The driver failed or the deadline passed: the environment becomes Failed.
    ``removal_blocked``: the driver says removing the grant fails the same way until
    someone acts."""
    error = error or "The operation failed."
    return _finish(operation_id, error=error, step=step, removal_blocked=removal_blocked)


def _finish(operation_id, *, error, step=None, removal_blocked=False):
    with transaction.atomic():
        environment_id = Operation.objects.values_list("environment_id", flat=True).get(
            pk=operation_id
        )
        environment = Environment.objects.select_for_update().get(pk=environment_id)
        operation = Operation.objects.select_related(
            "service", "firewall_rule", "database_account"
        ).get(pk=operation_id)
        if not operation.is_active or step not in (None, operation.step_number):
            logger.warning(
                "Operation %s is %s at step %s; ignoring a late %s of step %s.",
                operation.activity_id,
                operation.outcome,
                operation.step_number,
                "failure" if error else "completion",
                step,
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
            _settle_grant(operation, error, now, removal_blocked)
        if error:
            operation.outcome = Outcome.FAILED
            operation.error = error
        else:
            operation.outcome = operation.success_outcome

        operation.finished_at = now
        operation.status_after = environment.status
        operation.step, operation.step_due_at, operation.step_lease_until = "", None, None
        operation.save(
            update_fields=[
                *("outcome", "error", "finished_at", "status_after"),
                *("step", "step_due_at", "step_lease_until"),
            ]
        )

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
        # The environment's row first, as finishing an operation locks it before it
        # settles the grant: the other order deadlocks with a worker settling this grant.
        # get(), not first(): first()'s ordering joins the project, whose row FOR UPDATE
        # would lock too (a role change deadlocked on it in the soak).
        Environment.objects.select_for_update().get(pk=grant.environment_id)
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


def _failed_removals(grant):
    return grant.operations.filter(kind__in=END_GRANT_KINDS, outcome=Outcome.FAILED).count()


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
        AccessEnd.GROUPS_UNCONFIRMED: (
            "Ended by the portal: the identity provider has not confirmed the requester's "
            "groups for longer than the configured maximum (no refresh token)."
        ),
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


def _settle_grant(operation, error, now, removal_blocked=False):
    """Record on the grant what its operation achieved."""
    grant = operation.firewall_rule or operation.database_account
    if operation.kind in END_GRANT_KINDS:
        # A failed removal is retried by the sweeper; one that keeps failing is shown.
        if not error:
            grant.removed_at, grant.removal_blocked = now, ""
        elif removal_blocked or _failed_removals(grant) + 1 >= REMOVAL_BLOCKED_AFTER:
            grant.removal_blocked = error
        grant.save(update_fields=["removed_at", "removal_blocked"])
        return
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
